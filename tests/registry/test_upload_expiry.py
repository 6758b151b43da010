"""Unfinished uploads expire after a day; a scheduled task discards them and their bytes (idle sessions:
test_gc_uploads.py)."""

import datetime as dt
import io

from django.core.management import call_command
from django.utils import timezone
from django_q.models import Schedule

from registry.models import Upload
from registry.store import get_store
from registry.tasks import reclaim_uploads


def test_expired_sessions_and_their_bytes_are_discarded(v2_operator, settings):
    fresh = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    old = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    v2_operator.request("PATCH", old, b"partial")
    stale = Upload.objects.get(pk=old.rsplit("/", 1)[1])
    Upload.objects.filter(pk=stale.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    path = get_store().root / "uploads" / str(stale.pk)
    assert path.exists()
    assert v2_operator.get(old).status_code == 404  # already unusable before the sweep
    assert reclaim_uploads() == 1
    assert reclaim_uploads() == 0  # a second delivery finds nothing to do
    assert not path.exists()
    assert v2_operator.get(fresh).status_code == 204


def test_new_sessions_expire_after_the_configured_ttl(v2_operator):
    v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")
    upload = Upload.objects.get()
    assert abs((upload.expires_at - upload.created_at).total_seconds() - 24 * 3600) < 5


def test_cleanup_is_scheduled(db):
    call_command("setup_schedules", stdout=io.StringIO())
    Schedule.objects.create(name="train: expire registry uploads", func="registry.tasks.expire_uploads")
    call_command("setup_schedules", stdout=io.StringIO())  # twice: one row per schedule, the old one gone
    assert Schedule.objects.get(name="train: reclaim registry uploads").func == "registry.tasks.reclaim_uploads"
    gc = Schedule.objects.get(name="train: registry gc")
    assert (gc.func, gc.minutes) == ("registry.tasks.collect_garbage", 60)
    assert not Schedule.objects.filter(name="train: expire registry uploads").exists()
