"""The local backend's image store, kept to what jobs still want: every image but those of active
local jobs and of local jobs that finished within TRAIN_LOCAL_IMAGE_KEEP_HOURS (a re-run is likely,
and it then needs no new pull) is removed, hourly (backends/local_images.py)."""

from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from backends.local_images import local_images_prune
from jobs.models import ACTIVE_STATUSES, Job


def local_images_wanted(*, now=None) -> set[str]:
    """The image digests of local jobs that are active or finished recently."""
    now = now or timezone.now()
    recent = now - timedelta(hours=settings.TRAIN_LOCAL_IMAGE_KEEP_HOURS)
    wanted = Job.objects.filter(backend="local").filter(Q(status__in=ACTIVE_STATUSES) | Q(finished_at__gte=recent))
    return set(wanted.exclude(image_digest="").values_list("image_digest", flat=True).distinct())


def local_images_tidy(*, now=None) -> dict:
    if not settings.TRAIN_LOCAL_BACKEND:
        return {"skipped": "the local backend is off"}
    report = local_images_prune(keep_digests=local_images_wanted(now=now))
    return {"removed": len(report.removed), "kept": report.kept, "in_use": report.in_use, "skipped": report.skipped}
