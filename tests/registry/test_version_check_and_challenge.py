"""GET /v2/: the version check docker and skopeo start with."""

from tests.registry.conftest import basic, error_code


def test_anonymous_version_check_is_401_with_bearer_challenge(client, db):
    response = client.get("/v2/")
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"
    assert response["Docker-Distribution-API-Version"] == "registry/2.0"
    challenge = response["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="http://testserver/v2/token",service="train-registry"')


def test_token_with_empty_scope_reaches_version_check(v2_operator):
    token = v2_operator.token()
    response = v2_operator.client.get("/v2/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200
    assert response.json() == {}
    assert response["Docker-Distribution-API-Version"] == "registry/2.0"


def test_basic_credentials_reach_version_check(client, operator):
    response = client.get("/v2/", HTTP_AUTHORIZATION=basic("acme", operator.plaintext))
    assert response.status_code == 200


def test_empty_scope_token_cannot_reach_a_repository(v2_operator):
    token = v2_operator.token()
    response = v2_operator.client.get("/v2/acme/app/tags/list", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert 'scope="repository:acme/app:pull"' in response["WWW-Authenticate"]


def test_unknown_endpoint_is_json_404(v2_operator):
    response = v2_operator.client.get("/v2/acme/app/nothing-here")
    assert response.status_code == 404
    assert error_code(response) == "NAME_UNKNOWN"


def test_push_challenges_name_pull_and_push(client, db):
    for method, path in [("post", "/v2/acme/app/blobs/uploads/"), ("put", "/v2/acme/app/manifests/v1"),
                         ("patch", "/v2/acme/app/blobs/uploads/00000000-0000-0000-0000-000000000000")]:
        response = getattr(client, method)(path)
        assert response.status_code == 401, (method, path)
        assert 'scope="repository:acme/app:pull,push"' in response["WWW-Authenticate"], (method, path)


def test_mount_challenge_also_names_pull_on_the_source(client, db):
    digest = "sha256:" + "a" * 64
    response = client.post(f"/v2/acme/copy/blobs/uploads/?mount={digest}&from=acme/app")
    assert response.status_code == 401
    assert 'scope="repository:acme/app:pull repository:acme/copy:pull,push"' in response["WWW-Authenticate"]


def test_insufficient_scope_on_a_mount_names_the_source_too(v2_operator):
    token = v2_operator.token("repository:acme/app:pull")
    digest = "sha256:" + "a" * 64
    response = v2_operator.client.post(f"/v2/acme/copy/blobs/uploads/?mount={digest}&from=acme/app",
                                       HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]
    assert 'scope="repository:acme/app:pull repository:acme/copy:pull,push"' in response["WWW-Authenticate"]
