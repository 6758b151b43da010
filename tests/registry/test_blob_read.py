"""Blob HEAD/GET with Range, and visibility only through a repository link."""

import os

from tests.registry.conftest import error_code

DATA = os.urandom(5000)


def test_head_carries_the_get_headers_without_a_body(v2_operator):
    digest = v2_operator.push_blob("acme/app", DATA)
    response = v2_operator.head(f"/v2/acme/app/blobs/{digest}")
    assert response.status_code == 200
    assert response["Content-Length"] == "5000"
    assert response["Docker-Content-Digest"] == digest
    assert response["Accept-Ranges"] == "bytes"
    assert response.content == b""


def test_get_streams_the_bytes(v2_operator):
    digest = v2_operator.push_blob("acme/app", DATA)
    response = v2_operator.get(f"/v2/acme/app/blobs/{digest}")
    assert response.status_code == 200 and response.streaming
    assert response.getvalue() == DATA
    assert response["ETag"] == f'"{digest}"'


def test_range_requests(v2_operator):
    digest = v2_operator.push_blob("acme/app", DATA)
    path = f"/v2/acme/app/blobs/{digest}"
    middle = v2_operator.get(path, HTTP_RANGE="bytes=100-199")
    assert middle.status_code == 206
    assert middle["Content-Range"] == "bytes 100-199/5000" and middle["Content-Length"] == "100"
    assert middle.getvalue() == DATA[100:200]
    assert v2_operator.get(path, HTTP_RANGE="bytes=4900-").getvalue() == DATA[4900:]
    assert v2_operator.get(path, HTTP_RANGE="bytes=-10").getvalue() == DATA[-10:]
    assert v2_operator.get(path, HTTP_RANGE="bytes=4990-9999").getvalue() == DATA[4990:]


def test_unsatisfiable_or_malformed_range_is_416(v2_operator):
    digest = v2_operator.push_blob("acme/app", DATA)
    for header in ["bytes=5000-", "bytes=10-5", "bytes=0-1,5-6", "items=0-1", "bytes=-0"]:
        response = v2_operator.get(f"/v2/acme/app/blobs/{digest}", HTTP_RANGE=header)
        assert response.status_code == 416, header
        assert response["Content-Range"] == "bytes */5000"


def test_unknown_blob_is_404(v2_operator):
    v2_operator.push_blob("acme/app", DATA)
    response = v2_operator.get("/v2/acme/app/blobs/sha256:" + "0" * 64)
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"


def test_a_blob_is_not_visible_in_a_repository_it_was_not_pushed_to(v2_operator):
    digest = v2_operator.push_blob("acme/app", DATA)
    assert v2_operator.head(f"/v2/acme/other/blobs/{digest}").status_code == 404


def test_another_account_cannot_read_a_blob_by_digest(v2_operator, v2_outsider):
    digest = v2_operator.push_blob("acme/app", DATA)
    assert v2_outsider.get(f"/v2/acme/app/blobs/{digest}").status_code == 403
    response = v2_outsider.get(f"/v2/globex/app/blobs/{digest}")
    assert response.status_code == 404 and error_code(response) == "BLOB_UNKNOWN"


def test_viewer_can_pull(v2_operator, v2_viewer):
    digest = v2_operator.push_blob("acme/app", DATA)
    assert v2_viewer.get(f"/v2/acme/app/blobs/{digest}").getvalue() == DATA


def test_blob_delete_is_unsupported(v2_operator):
    digest = v2_operator.push_blob("acme/app", DATA)
    response = v2_operator.request("DELETE", f"/v2/acme/app/blobs/{digest}")
    assert response.status_code == 405
    assert error_code(response) == "UNSUPPORTED"
