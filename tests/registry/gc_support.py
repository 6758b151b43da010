"""Shared by the garbage-collection tests: moving the clock past the grace, and crash leftovers."""

import datetime as dt

import pytest
from django.utils import timezone

from registry.models import Upload
from registry.store import get_store


@pytest.fixture
def private_store(settings, tmp_path):
    """A filesystem store of this test alone: the shared one keeps files of earlier tests (their rows
    rolled back), which a collection would rightly count as orphans."""
    settings.TRAIN_REGISTRY_DATA_DIR = tmp_path / "registry"
    return get_store()


def hours_later(hours: float) -> dt.datetime:
    """A `now` for gc_run: the collector's clock moved forward instead of sleeping."""
    return timezone.now() + dt.timedelta(hours=hours)


def orphan_left_by_a_killed_put(v2, name: str, data: bytes, digest: str) -> None:
    """What a PUT killed between `upload_promote` and its transaction leaves: the blob file in place,
    no Blob row (and the session's row, which the upload sweep reclaims later)."""
    location = v2.request("POST", f"/v2/{name}/blobs/uploads/")["Location"]
    assert v2.request("PATCH", location, data).status_code == 202
    upload = Upload.objects.get(pk=location.rsplit("/", 1)[1])
    store = get_store()
    store.upload_assemble(upload)
    store.upload_promote(upload, digest)
    assert store.blob_exists(digest)
