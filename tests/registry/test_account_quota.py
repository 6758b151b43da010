"""Per-account limits on the registry: stored bytes (quota) and unfinished upload sessions."""

import pytest

from registry.models import Blob, Upload
from tests.registry.conftest import digest_of, error_code

pytestmark = pytest.mark.django_db


def push(v2, name, data):
    return v2.request("POST", f"/v2/{name}/blobs/uploads/", data, query={"digest": digest_of(data)})


def test_upload_past_the_quota_is_denied_and_stores_nothing(v2_operator, v2_outsider, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 1000
    assert push(v2_operator, "acme/app", b"a" * 600).status_code == 201
    over = push(v2_operator, "acme/app", b"b" * 600)
    assert over.status_code == 403 and error_code(over) == "DENIED"
    assert not Blob.objects.filter(digest=digest_of(b"b" * 600)).exists()
    assert v2_operator.head(f"/v2/acme/app/blobs/{digest_of(b'b' * 600)}").status_code == 404
    # Quotas are per account: another account's pushes are not affected.
    assert push(v2_outsider, "globex/app", b"c" * 600).status_code == 201


def test_chunked_upload_is_stopped_at_the_quota(v2_operator, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 1000
    start = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")
    location = start["Location"]
    first = v2_operator.request("PATCH", location, b"x" * 800, HTTP_CONTENT_RANGE="0-799")
    assert first.status_code == 202
    second = v2_operator.request("PATCH", location, b"y" * 300, HTTP_CONTENT_RANGE="800-1099")
    assert second.status_code == 403 and error_code(second) == "DENIED"
    assert Upload.objects.get().offset == 800, "the refused chunk was not recorded"


def test_quota_zero_means_no_quota(v2_operator, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 0
    assert push(v2_operator, "acme/app", b"a" * 5000).status_code == 201


def test_open_upload_sessions_are_capped_per_account(v2_operator, v2_outsider, settings):
    settings.TRAIN_REGISTRY_MAX_OPEN_UPLOADS = 2
    sessions = [v2_operator.request("POST", "/v2/acme/app/blobs/uploads/") for _ in range(2)]
    assert [s.status_code for s in sessions] == [202, 202]
    third = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")
    assert third.status_code == 429 and error_code(third) == "TOOMANYREQUESTS"
    assert v2_outsider.request("POST", "/v2/globex/app/blobs/uploads/").status_code == 202
    assert v2_operator.request("DELETE", sessions[0]["Location"]).status_code == 204
    assert v2_operator.request("POST", "/v2/acme/app/blobs/uploads/").status_code == 202
