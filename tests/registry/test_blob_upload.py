"""Blob uploads: monolithic, single POST, chunked, streaming, status, cancel."""

import os

from registry.models import Blob, RepositoryBlob, Upload
from registry.store import get_store
from tests.registry.conftest import digest_of, error_code

DATA = os.urandom(3000)


def start(v2, name="acme/app"):
    response = v2.request("POST", f"/v2/{name}/blobs/uploads/")
    assert response.status_code == 202, response.content
    assert response["Range"] == "0-0" and response["Docker-Upload-UUID"]
    return response["Location"]


def test_monolithic_post_then_put(v2_operator):
    location = start(v2_operator)
    response = v2_operator.request("PUT", location, DATA, query={"digest": digest_of(DATA)})
    assert response.status_code == 201
    assert response["Location"] == f"/v2/acme/app/blobs/{digest_of(DATA)}"
    assert response["Docker-Content-Digest"] == digest_of(DATA)
    assert RepositoryBlob.objects.filter(repository__name="acme/app", blob__digest=digest_of(DATA)).exists()
    assert not Upload.objects.exists()


def test_single_post_with_digest(v2_operator):
    response = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/", DATA, query={"digest": digest_of(DATA)})
    assert response.status_code == 201
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest_of(DATA)}").getvalue() == DATA


def test_chunked_patches_in_order(v2_operator):
    location = start(v2_operator)
    for first, last in [(0, 999), (1000, 1999), (2000, 2999)]:
        response = v2_operator.request("PATCH", location, DATA[first:last + 1], HTTP_CONTENT_RANGE=f"{first}-{last}")
        assert response.status_code == 202
        assert response["Range"] == f"0-{last}"
        location = response["Location"]
    status = v2_operator.get(location)
    assert status.status_code == 204 and status["Range"] == "0-2999"
    assert v2_operator.request("PUT", location, query={"digest": digest_of(DATA)}).status_code == 201
    assert Blob.objects.get(digest=digest_of(DATA)).size == 3000


def test_out_of_order_and_overlapping_chunks_are_416(v2_operator):
    location = start(v2_operator)
    v2_operator.request("PATCH", location, DATA[:1000], HTTP_CONTENT_RANGE="0-999")
    skipped = v2_operator.request("PATCH", location, DATA[1500:2000], HTTP_CONTENT_RANGE="1500-1999")
    assert skipped.status_code == 416
    assert skipped["Range"] == "0-999"
    overlap = v2_operator.request("PATCH", location, DATA[500:1500], HTTP_CONTENT_RANGE="500-1499")
    assert overlap.status_code == 416
    assert error_code(overlap) == "RANGE_INVALID"
    assert Upload.objects.get().offset == 1000


def test_content_range_disagreeing_with_the_body_length_is_416(v2_operator):
    location = start(v2_operator)
    response = v2_operator.request("PATCH", location, DATA[:10], HTTP_CONTENT_RANGE="0-99")
    assert response.status_code == 416


def test_streaming_patch_without_content_range(v2_operator):
    location = start(v2_operator)
    response = v2_operator.request("PATCH", location, DATA)
    assert response.status_code == 202 and response["Range"] == "0-2999"
    final = v2_operator.request("PUT", response["Location"], query={"digest": digest_of(DATA)})
    assert final.status_code == 201


def test_put_with_the_final_chunk(v2_operator):
    location = start(v2_operator)
    v2_operator.request("PATCH", location, DATA[:2000], HTTP_CONTENT_RANGE="0-1999")
    final = v2_operator.request("PUT", location, DATA[2000:], query={"digest": digest_of(DATA)})
    assert final.status_code == 201
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest_of(DATA)}").getvalue() == DATA


def test_wrong_digest_is_400_and_stores_nothing(v2_operator):
    location = start(v2_operator)
    wrong = digest_of(b"something else")
    response = v2_operator.request("PUT", location, DATA, query={"digest": wrong})
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"
    assert not Blob.objects.exists() and not Upload.objects.exists()
    assert not get_store().blob_exists(wrong)
    assert v2_operator.request("PUT", location, query={"digest": wrong}).status_code == 404


def test_single_post_with_wrong_digest_is_400(v2_operator):
    response = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/", DATA, query={"digest": digest_of(b"x")})
    assert response.status_code == 400
    assert not Blob.objects.exists()


def test_put_without_digest_is_400(v2_operator):
    location = start(v2_operator)
    assert error_code(v2_operator.request("PUT", location, DATA)) == "DIGEST_INVALID"


def test_cancel_discards_the_session(v2_operator):
    location = start(v2_operator)
    v2_operator.request("PATCH", location, DATA)
    assert v2_operator.request("DELETE", location).status_code == 204
    assert v2_operator.get(location).status_code == 404
    assert not Upload.objects.exists()


def test_another_repositorys_session_is_unknown(v2_operator):
    location = start(v2_operator, "acme/one")
    other = location.replace("acme/one", "acme/two")
    response = v2_operator.request("PATCH", other, DATA)
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"


def test_another_accounts_session_is_not_reachable(v2_operator, v2_outsider):
    location = start(v2_operator)
    assert v2_outsider.request("PATCH", location, DATA).status_code == 403
    stolen = location.replace("acme/app", "globex/app")
    assert v2_outsider.request("PATCH", stolen, DATA).status_code == 404


def test_malformed_session_id_is_404(v2_operator):
    assert v2_operator.get("/v2/acme/app/blobs/uploads/not-a-uuid").status_code == 404


def test_viewer_cannot_start_an_upload(v2_viewer):
    response = v2_viewer.request("POST", "/v2/acme/app/blobs/uploads/")
    assert response.status_code == 403
    assert error_code(response) == "DENIED"


def test_blob_over_the_size_limit_is_refused(v2_operator, settings):
    settings.TRAIN_REGISTRY_MAX_BLOB_BYTES = 1000
    location = start(v2_operator)
    response = v2_operator.request("PATCH", location, DATA)
    assert response.status_code == 413
    assert Upload.objects.get().offset == 0
