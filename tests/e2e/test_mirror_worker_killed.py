"""A worker SIGKILLed in the middle of a blob while mirroring a job's image: once its lease lapses the
copy resumes where the target has it, no finished blob is sent again, the target ends byte-identical,
and the job is submitted with the mirror by digest."""

import os
import re
from collections import Counter

import pytest
from django.conf import settings

from jobs import queue
from jobs.models import Job, Submission
from jobs.sweeping import jobs_sweep
from registry.models import Mirror, MirrorState
from tests.registry.conftest import v2_operator  # noqa: F401 (a fixture)
from tests.registry.test_mirror_copier import PASSWORD, USER, blob_at, pulled, push_layers
from tests.support.distribution import distribution
from tests.support.frontproxy import front
from tests.support.jobs import make_job
from tests.support.processes import qcluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# The worker copies in chunks of this size here (TRAIN_MIRROR_CHUNK_BYTES), so the kill between two
# chunks re-sends 64 MiB at most, not the 256 MiB of a production chunk (blobs over 64 MiB are chunked).
CHUNK_UPLOAD_BYTES = 64 * 1024 * 1024


def finished_uploads(paths: list[str]) -> Counter:
    """How often each blob's upload was completed at the target (the PUT that names its digest)."""
    return Counter(match.group(1) for path in paths if (match := re.search(r"[?&]digest=(sha256(?::|%3A)\w+)", path)))


def test_a_killed_mirror_copy_resumes_without_resending_and_the_job_is_submitted(
        operator, acme, v2_operator, tmp_path, fresh_faults):  # noqa: F811
    big = os.urandom(CHUNK_UPLOAD_BYTES + 8 * 1024 * 1024)  # two chunks: the kill falls between them
    small = [f"small layer {i} ".encode() * 200 for i in range(2)]
    digest = push_layers(v2_operator, "acme/trainer", [*small, big])
    with distribution(tmp_path / "distribution", users={USER: PASSWORD}) as target, front(target) as counted:
        job = make_job(acme, backend="fake", image=f"{settings.TRAIN_REGISTRY_HOST}/acme/trainer:v1",
                       image_digest=digest,
                       backend_config={"mirror_to": counted.base, "mirror_credentials": [USER, PASSWORD]})
        queue.enqueue_submit(job.pk)
        with qcluster(tmp_path, TRAIN_FAULTS="mirror_after_chunk:sigkill", TRAIN_TEST_FAKE_BACKEND="1",
                      TRAIN_MIRROR_CHUNK_BYTES=CHUNK_UPLOAD_BYTES):

            def submitted():
                jobs_sweep()  # what the worker's schedule runs every minute: re-drives the lapsed mirror
                return Job.objects.get(pk=job.pk).submission == Submission.SUBMITTED

            wait_until(submitted, timeout=300, interval=2, message="the mirror to resume and the job to be submitted")
        mirror = Mirror.objects.get()
        assert (settings.TRAIN_DATA_DIR / "faults-fired" / "mirror_after_chunk").exists(), "the worker was killed"
        assert mirror.state == MirrorState.DONE
        assert mirror.attempts >= 2, "a second run finished what the killed one started"
        once = finished_uploads(counted.paths)
        assert set(once.values()) == {1}, f"a finished blob was sent again: {once}"
        assert counted.bytes_uploaded < mirror.bytes_total + CHUNK_UPLOAD_BYTES, "the big blob resumed, not restarted"
        assert pulled(target, "train/acme/trainer", digest).headers["Docker-Content-Digest"] == digest
        assert blob_at(target, "train/acme/trainer", mirror.blobs.order_by("-size").first().digest) == big
    row = Job.objects.get(pk=job.pk)
    assert row.cloud_image == f"{counted.base.split('://', 1)[1]}/train/acme/trainer@{digest}"
    assert row.submit_attempts == 1, "mirroring burned no submission attempt"
