"""Idle upload sessions (no bytes for an hour) are discarded with their bytes, freeing the account's
upload slots; bytes of sessions whose row is gone are removed; a session still receiving bytes stays."""

import pytest
from django.utils import timezone

from registry.gc import uploads_reclaim
from registry.models import Upload
from registry.services import account_stored_bytes
from registry.store import get_store
from tests.registry.conftest import error_code
from tests.registry.gc_support import hours_later, private_store  # noqa: F401 (fixture)
from tests.registry.test_s3_store import s3_endpoint, s3_store  # noqa: F401 (fixtures)


def start(v2, data: bytes = b"") -> Upload:
    location = v2.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    if data:
        assert v2.request("PATCH", location, data).status_code == 202
    return Upload.objects.get(pk=location.rsplit("/", 1)[1])


def stored_uploads(store) -> set[str]:
    return {item.name for item in store.upload_list()}


@pytest.mark.usefixtures("private_store")
def test_idle_sessions_are_reclaimed_and_free_their_slots(v2_operator, settings):
    settings.TRAIN_REGISTRY_MAX_OPEN_UPLOADS = 2
    idle = [start(v2_operator, b"x" * 1000), start(v2_operator)]
    assert error_code(v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")) == "TOOMANYREQUESTS"
    assert account_stored_bytes(account_id="acme") == 1000

    assert uploads_reclaim(now=hours_later(0.5)).count("uploads") == 0  # idle for less than an hour
    report = uploads_reclaim(now=hours_later(1.5))
    assert (report.count("uploads"), report.sizes["uploads"]) == (2, 1000)
    assert report.count("upload_debris") == 0  # their bytes went with their rows
    assert not Upload.objects.exists() and not stored_uploads(get_store()) & {str(u.pk) for u in idle}
    assert v2_operator.request("POST", "/v2/acme/app/blobs/uploads/").status_code == 202
    assert account_stored_bytes(account_id="acme") == 0


@pytest.mark.usefixtures("private_store")
def test_a_session_still_receiving_bytes_is_kept(v2_operator):
    upload = start(v2_operator, b"first chunk")
    # A long PATCH refreshes the row only when it ends; its bytes on disk are recent.
    Upload.objects.filter(pk=upload.pk).update(updated_at=timezone.now() - timezone.timedelta(hours=2))
    assert uploads_reclaim().count("uploads") == 0
    assert Upload.objects.filter(pk=upload.pk).exists()


@pytest.mark.usefixtures("private_store")
def test_a_session_touched_meanwhile_is_not_reclaimed(v2_operator):
    upload = start(v2_operator, b"chunk")
    Upload.objects.filter(pk=upload.pk).update(offset=10, updated_at=timezone.now())  # a PATCH won meanwhile
    assert not upload.reclaim(idle_before=hours_later(2), now=timezone.now())
    assert Upload.objects.filter(pk=upload.pk).exists()


def check_debris_removed(v2, store):
    upload = start(v2, b"partial bytes of a session whose row is gone")
    Upload.objects.filter(pk=upload.pk).delete()  # as a crash after the row's delete leaves it
    assert str(upload.pk) in stored_uploads(store)
    assert uploads_reclaim(now=hours_later(0.5)).count("upload_debris") == 0  # maybe a session starting
    report = uploads_reclaim(now=hours_later(1.5))
    assert report.count("upload_debris") == 1
    assert str(upload.pk) not in stored_uploads(store)


@pytest.mark.usefixtures("private_store")
def test_upload_bytes_without_a_session_are_removed(v2_operator):
    check_debris_removed(v2_operator, get_store())


@pytest.mark.usefixtures("s3_store")
def test_upload_objects_without_a_session_are_removed_on_s3(v2_operator):
    store = get_store()
    check_debris_removed(v2_operator, store)
    assert store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", []) == []
    listing = store.client.list_objects_v2(Bucket=store.bucket, Prefix=store.prefix + "uploads/")
    assert listing.get("KeyCount", 0) == 0
