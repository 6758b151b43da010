"""GET /v2/_catalog lists the caller's account only, repositories that hold a manifest only,
paginated and clamped."""

from tests.registry.conftest import error_code


def test_catalog_lists_only_the_callers_account(v2_operator, v2_outsider):
    for name in ("acme/b", "acme/a", "acme/team/c"):
        v2_operator.push_image(name, "v1")
    v2_outsider.push_image("globex/secret", "v1")
    assert v2_operator.get("/v2/_catalog").json() == {"repositories": ["acme/a", "acme/b", "acme/team/c"]}
    assert v2_outsider.get("/v2/_catalog").json() == {"repositories": ["globex/secret"]}


def test_catalog_paginates(v2_operator):
    for name in ("acme/b", "acme/a", "acme/c"):
        v2_operator.push_image(name, "v1")
    first = v2_operator.get("/v2/_catalog", query={"n": 2})
    assert first.json()["repositories"] == ["acme/a", "acme/b"]
    assert first["Link"] == '</v2/_catalog?n=2&last=acme%2Fb>; rel="next"'
    assert v2_operator.get("/v2/_catalog", query={"n": 2, "last": "acme/b"}).json()["repositories"] == ["acme/c"]
    assert len(v2_operator.get("/v2/_catalog", query={"n": "1e9"}).json()["repositories"]) == 3


def test_catalog_needs_the_catalog_scope(client, v2_operator):
    token = v2_operator.token("repository:acme/a:pull")
    response = client.get("/v2/_catalog", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 401 and 'scope="registry:catalog:*"' in response["WWW-Authenticate"]


def test_anonymous_catalog_is_401(client, db):
    assert error_code(client.get("/v2/_catalog")) == "UNAUTHORIZED"


def test_a_repository_appears_only_once_it_holds_a_manifest(v2_operator):
    v2_operator.push_blob("acme/failed", b"a layer")  # a push that never got to its manifest
    started = v2_operator.request("POST", "/v2/acme/started/blobs/uploads/")
    assert started.status_code == 202
    assert v2_operator.get("/v2/_catalog").json() == {"repositories": []}
    v2_operator.push_image("acme/failed", "v1")
    assert v2_operator.get("/v2/_catalog").json() == {"repositories": ["acme/failed"]}
