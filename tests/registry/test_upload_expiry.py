"""Unfinished uploads expire after a day; a scheduled task discards them and their bytes."""

import datetime as dt
import io

from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from registry.models import Upload
from registry.store import get_store
from registry.tasks import expire_uploads


def test_expired_sessions_and_their_bytes_are_discarded(v2_operator, settings):
    fresh = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    old = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    v2_operator.request("PATCH", old, b"partial")
    stale = Upload.objects.get(pk=old.rsplit("/", 1)[1])
    Upload.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    path = get_store().root / "uploads" / str(stale.pk)
    assert path.exists()
    assert v2_operator.get(old).status_code == 404  # already unusable before the sweep
    assert expire_uploads() == 1
    assert expire_uploads() == 0  # a second delivery finds nothing to do
    assert not path.exists()
    assert v2_operator.get(fresh).status_code == 204


def test_new_sessions_expire_after_the_configured_ttl(v2_operator):
    v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")
    upload = Upload.objects.get()
    assert abs((upload.expires_at - upload.created_at).total_seconds() - 24 * 3600) < 5


def test_cleanup_is_scheduled(db):
    call_command("setup_schedules", stdout=io.StringIO())
    schedule = Schedule.objects.get(name="train: expire registry uploads")
    assert schedule.func == "registry.tasks.expire_uploads"
