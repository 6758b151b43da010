"""Names, tags and digests are checked before any storage access."""

import pytest

from tests.registry.conftest import basic, error_code

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize("name", [
    "A/b", "acme//b", "-a/b", "acme/a-", "acme/a..b", "acme/" + "a" * 251, "acme/%2E%2E/b", "acme/caf%C3%A9",
    "acme", "acme/b/", "acme/ b",
])
def test_invalid_names_are_400_name_invalid(client, operator, name):
    response = client.get(f"/v2/{name}/tags/list", HTTP_AUTHORIZATION=basic("acme", operator.plaintext))
    assert response.status_code == 400, response.content
    assert error_code(response) == "NAME_INVALID"


def test_encoded_traversal_in_name_is_400(client, operator):
    response = client.get("/v2/acme%2F..%2Fglobex/app/blobs/" + DIGEST,
                          HTTP_AUTHORIZATION=basic("acme", operator.plaintext))
    assert response.status_code == 400
    assert error_code(response) == "NAME_INVALID"


@pytest.mark.parametrize("path", [
    "/v2/acme/app/blobs/sha256:abc",
    "/v2/acme/app/blobs/sha256:" + "A" * 64,
    "/v2/acme/app/manifests/sha256:" + "a" * 63,
    "/v2/acme/app/referrers/sha256:zz",
])
def test_malformed_digests_are_400_never_500(client, operator, path):
    response = client.get(path, HTTP_AUTHORIZATION=basic("acme", operator.plaintext))
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


@pytest.mark.parametrize("tag", ["a" * 129, ".hidden", "-dash", "tag+plus", "a%00b", "caf%C3%A9"])
def test_pushing_an_invalid_tag_is_400_tag_invalid(v2_operator, tag):
    response = v2_operator.push_manifest("acme/app", tag, {"schemaVersion": 2})
    assert response.status_code == 400
    assert error_code(response) == "TAG_INVALID"


@pytest.mark.parametrize("tag", ["a" * 129, ".hidden", "-dash", "tag+plus", "a%00b", "caf%C3%A9"])
@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_reading_or_deleting_an_invalid_tag_is_404_manifest_unknown(v2_operator, tag, method):
    v2_operator.push_image("acme/app", "v1")
    response = v2_operator.request(method, f"/v2/acme/app/manifests/{tag}")
    assert response.status_code == 404
    if method != "HEAD":
        assert error_code(response) == "MANIFEST_UNKNOWN"


@pytest.mark.parametrize("path", [
    "/v2/acme/app/blobs/md5:" + "a" * 32,
    "/v2/acme/app/blobs/sha384:" + "a" * 96,
    "/v2/acme/app/blobs/sha512:" + "a" * 128,
    "/v2/acme/app/manifests/sha512:" + "a" * 128,
    "/v2/acme/app/manifests/blake3:" + "a" * 64,
])
def test_well_formed_digests_of_any_algorithm_are_404_when_unknown(v2_operator, path):
    v2_operator.push_image("acme/app", "v1")
    response = v2_operator.get(path)
    assert response.status_code == 404
    assert error_code(response) in ("BLOB_UNKNOWN", "MANIFEST_UNKNOWN")


@pytest.mark.parametrize("digest", ["md5:" + "a" * 32, "sha512:" + "a" * 128])
def test_blob_delete_of_any_digest_is_405(v2_operator, digest):
    response = v2_operator.request("DELETE", f"/v2/acme/app/blobs/{digest}")
    assert response.status_code == 405
    assert error_code(response) == "UNSUPPORTED"


def test_tag_that_looks_like_a_digest_is_400(v2_operator):
    response = v2_operator.push_manifest("acme/app", "sha256:notadigest", {"schemaVersion": 2})
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


def test_digest_with_path_separators_matches_no_route_and_is_json_404(client, operator):
    response = client.get("/v2/acme/app/manifests/sha256:../../etc",
                          HTTP_AUTHORIZATION=basic("acme", operator.plaintext))
    assert response.status_code == 404
    assert error_code(response) == "NAME_UNKNOWN"
