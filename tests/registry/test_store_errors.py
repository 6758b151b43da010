"""A failing blob store (a disk error, an unreachable or refusing S3 endpoint) is answered with the
spec's JSON error body and 503 UNAVAILABLE, and logged; never an HTML error page."""

import json

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

import registry.services
from registry import views_blobs
from tests.registry.conftest import digest_of
from tests.registry.test_s3_store import s3_endpoint, s3_store  # noqa: F401 (fixtures)

DATA = b"blob bytes"


class FailingStore:
    def __init__(self, error):
        self.error = error

    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise self.error
        return fail


def assert_unavailable(response):
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["errors"][0]["code"] == "UNAVAILABLE"
    assert response["Docker-Distribution-API-Version"] == "registry/2.0"


ERRORS = [OSError(5, "Input/output error"), EndpointConnectionError(endpoint_url="http://127.0.0.1:1"),
          ClientError({"Error": {"Code": "SlowDown", "Message": "slow down"}}, "GetObject")]


@pytest.mark.parametrize("error", ERRORS, ids=type)
def test_blob_read_failure_is_json_503(v2_operator, monkeypatch, caplog, error):
    digest = v2_operator.push_blob("acme/app", DATA)
    monkeypatch.setattr(views_blobs, "get_store", lambda: FailingStore(error))
    assert_unavailable(v2_operator.get(f"/v2/acme/app/blobs/{digest}"))
    assert "blob store or stream I/O failed" in caplog.text


@pytest.mark.parametrize("error", ERRORS, ids=type)
def test_upload_failure_is_json_503(v2_operator, monkeypatch, error):
    monkeypatch.setattr(registry.services, "get_store", lambda: FailingStore(error))
    assert_unavailable(v2_operator.request("POST", "/v2/acme/app/blobs/uploads/", DATA,
                                           query={"digest": digest_of(DATA)}))


def test_unusable_filesystem_store_root_is_json_503(v2_operator, settings, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_bytes(b"")
    settings.TRAIN_REGISTRY_DATA_DIR = blocker / "registry"
    response = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")
    assert_unavailable(response)
    head = v2_operator.head("/v2/acme/app/blobs/" + digest_of(DATA))
    assert head.status_code == 404 and head.content == b""  # a read that needs no store still answers


def test_missing_s3_bucket_is_json_503(v2_operator, s3_store, settings):  # noqa: F811 (the imported fixture)
    settings.TRAIN_REGISTRY_S3_BUCKET = s3_store.bucket + "-missing"  # a real S3 error: NoSuchBucket
    assert_unavailable(v2_operator.request("POST", "/v2/acme/app/blobs/uploads/"))
