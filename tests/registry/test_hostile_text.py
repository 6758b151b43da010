"""NUL bytes, control characters and invalid UTF-8 in a name, a reference, a query parameter or a
header are a 4xx naming the field, never a 500 (PostgreSQL refuses NUL in text: it must not get one).
Checked through the Django test client and through a real gateway, which sees the raw bytes."""

import pytest
import requests

from tests.registry.conftest import basic, error_code

SUBJECT = "sha256:" + "5" * 64

# (path with query, expected status, expected code); each reaches a different check.
CASES = [
    ("/v2/acme/app%00/tags/list", 400, "NAME_INVALID"),
    ("/v2/acme%00app/tags/list", 400, "NAME_INVALID"),
    ("/v2/acme/app%ff/tags/list", 400, "NAME_INVALID"),
    ("/v2/acme/app/tags/list?last=a%00b", 400, "PAGINATION_NUMBER_INVALID"),
    ("/v2/acme/app/tags/list?n=1%00", 400, "PAGINATION_NUMBER_INVALID"),
    ("/v2/acme/app/tags/list?last=%01", 400, "PAGINATION_NUMBER_INVALID"),
    ("/v2/_catalog?last=acme/a%00", 400, "PAGINATION_NUMBER_INVALID"),
    (f"/v2/acme/app/referrers/{SUBJECT}?artifactType=application/x%00", 400, "UNSUPPORTED"),
    (f"/v2/acme/app/referrers/{SUBJECT}%00", 400, "DIGEST_INVALID"),
    ("/v2/acme/app/manifests/v1%00", 404, "MANIFEST_UNKNOWN"),
    ("/v2/acme/app/manifests/sha256:%00", 400, "DIGEST_INVALID"),
    (f"/v2/acme/app/blobs/{SUBJECT}%00", 400, "DIGEST_INVALID"),
    ("/v2/acme/app/blobs/uploads/%00", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("/v2/acme/app/tags/list?x%00=1", 400, "UNSUPPORTED"),
]
POST_CASES = [
    ("/v2/acme/app/blobs/uploads/?digest=sha256:%00", 400, "DIGEST_INVALID"),
    ("/v2/acme/app/blobs/uploads/?mount=sha256:%00&from=acme/one", 400, "DIGEST_INVALID"),
    (f"/v2/acme/app/blobs/uploads/?mount={SUBJECT}&from=acme/one%00", 400, "NAME_INVALID"),
]


def _raw_get(client, path, token, method="GET"):
    # The test client decodes the percent-escapes into PATH_INFO bytes, as a WSGI server does.
    route, _, query = path.partition("?")
    return client.generic(method, route, QUERY_STRING=query, HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.mark.parametrize(("path", "status", "code"), CASES + POST_CASES)
def test_unsafe_text_in_paths_and_queries_is_a_clear_4xx(client, v2_operator, path, status, code):
    v2_operator.push_image("acme/app", "v1")
    token = v2_operator.token("repository:acme/app:pull,push,delete", "repository:acme/one:pull",
                              "registry:catalog:*")
    method = "POST" if (path, status, code) in POST_CASES else "GET"
    response = _raw_get(client, path, token, method)
    assert response.status_code == status, response.content
    assert error_code(response) == code


@pytest.mark.parametrize("header, value, status, code", [
    ("CONTENT_TYPE", "application/vnd.oci.image.manifest.v1+json\x00", 400, "MANIFEST_INVALID"),
    ("HTTP_CONTENT_RANGE", "0-\x001", 416, "RANGE_INVALID"),
])
def test_unsafe_text_in_headers_is_a_clear_4xx(v2_operator, header, value, status, code):
    if header == "CONTENT_TYPE":
        response = v2_operator.request("PUT", "/v2/acme/app/manifests/v1", b"{}", content_type=value)
    else:
        location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
        response = v2_operator.request("PATCH", location, b"ab", **{header: value})
    assert response.status_code == status, response.content
    assert error_code(response) == code


def test_bearer_token_with_a_nul_is_401(client):
    response = client.get("/v2/acme/app/tags/list", HTTP_AUTHORIZATION="Bearer abc\x00def")
    assert response.status_code == 401


@pytest.mark.django_db(transaction=True)
def test_a_real_gateway_answers_raw_hostile_paths_with_json_4xx(registry_server, operator):
    session = requests.Session()
    auth = {"Authorization": basic("acme", operator.plaintext)}
    token = session.get(f"{registry_server}/v2/token", params={"scope": [
        "repository:acme/app:pull,push,delete", "repository:acme/one:pull", "registry:catalog:*"]},
        headers=auth, timeout=30).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    for path, status, code in CASES + POST_CASES:
        method = "POST" if (path, status, code) in POST_CASES else "GET"
        # A prepared request keeps the path byte for byte (requests would not re-encode %00).
        request = requests.Request(method, f"{registry_server}{path}", headers=bearer).prepare()
        request.url = f"{registry_server}{path}"
        response = session.send(request, timeout=30)
        assert (response.status_code, response.json()["errors"][0]["code"]) == (status, code), (path, response.text)
    scope = session.get(f"{registry_server}/v2/token?scope=repository:acme/app%00:pull", headers=auth, timeout=30)
    assert scope.status_code == 400 and scope.json()["errors"][0]["code"] == "UNSUPPORTED"
