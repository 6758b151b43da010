"""What the hourly prune of the local image store keeps: the digests of local jobs that are active,
or finished within TRAIN_LOCAL_IMAGE_KEEP_HOURS; never another backend's, never an old job's."""

from datetime import timedelta

import pytest
from django.utils import timezone

from backends.local_images import PruneReport
from jobs import image_store
from jobs.models import JobStatus
from tests.support.jobs import make_job

pytestmark = pytest.mark.django_db


def digest(n: int) -> str:
    return f"sha256:{n:064d}"


def test_active_and_recent_local_jobs_keep_their_images_and_nothing_else(acme, settings):
    settings.TRAIN_LOCAL_IMAGE_KEEP_HOURS = 24
    now = timezone.now()
    make_job(acme, image_digest=digest(1), status=JobStatus.PENDING)
    make_job(acme, image_digest=digest(2), status=JobStatus.IN_PROGRESS)
    make_job(acme, image_digest=digest(3), status=JobStatus.COMPLETED, finished_at=now - timedelta(hours=23))
    make_job(acme, image_digest=digest(4), status=JobStatus.FAILED, finished_at=now - timedelta(hours=25))
    make_job(acme, image_digest=digest(5), status=JobStatus.PENDING, backend="sagemaker")
    make_job(acme, image_digest="", image="docker.io/library/busybox:latest", status=JobStatus.PENDING)
    assert image_store.local_images_wanted(now=now) == {digest(1), digest(2), digest(3)}


def test_the_prune_is_given_what_is_wanted_and_skipped_with_the_local_backend_off(acme, settings, monkeypatch):
    given = []
    monkeypatch.setattr(image_store, "local_images_prune",
                        lambda *, keep_digests: given.append(keep_digests) or PruneReport(kept=1))
    make_job(acme, image_digest=digest(7), status=JobStatus.IN_PROGRESS)
    assert image_store.local_images_tidy() == {"removed": 0, "kept": 1, "in_use": 0, "skipped": ""}
    assert given == [{digest(7)}]
    settings.TRAIN_LOCAL_BACKEND = False
    assert image_store.local_images_tidy() == {"skipped": "the local backend is off"}
    assert len(given) == 1
