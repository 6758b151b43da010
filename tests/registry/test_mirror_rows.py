"""Mirror rows: one per (digest, target), shared; one worker copies at a time; progress is saved per
blob, so a copy that died continues without sending a finished blob again; failures are recorded as
transient (retried later) or permanent."""

import threading
import time
from functools import partialmethod

import pytest
from django.db import connection
from django.utils import timezone

from registry import copier as copier_module
from registry import mirror as mirror_module
from registry.client import Credentials, OciClient
from registry.mirror import MirrorTarget, mirror_ensure, mirror_progress_text, mirror_retry, mirror_run, mirrors_due
from registry.models import Mirror, MirrorBlob, MirrorState, Repository, TargetBlob
from tests.registry.test_mirror_copier import PASSWORD, USER, blob_at, pulled, push_layers
from tests.support.distribution import distribution
from tests.support.frontproxy import front
from tests.support.processes import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def target_registry(tmp_path):
    with distribution(tmp_path / "distribution", users={USER: PASSWORD}) as base:
        yield base


def target_for(base: str, repository="train/acme/trainer", password=PASSWORD) -> MirrorTarget:
    host = base.split("://", 1)[1]
    return MirrorTarget(registry=host, repository=repository, scheme="http", label="the test registry",
                        credentials=lambda: Credentials(USER, password))


@pytest.fixture
def pushed(v2_operator):
    layers = [f"mirror layer {i} ".encode() * 400 for i in range(3)]
    digest = push_layers(v2_operator, "acme/trainer", layers)
    return Repository.objects.get(name="acme/trainer"), digest, layers


def test_one_row_per_digest_and_target_shared_by_every_caller(target_registry, pushed):
    repository, digest, _ = pushed
    target = target_for(target_registry)
    first = mirror_ensure(repository=repository, digest=digest, target=target)
    again = mirror_ensure(repository=repository, digest=digest, target=target)
    other = mirror_ensure(repository=repository, digest=digest, target=target_for(target_registry, "train/other"))
    assert first.pk == again.pk != other.pk
    assert Mirror.objects.count() == 2


def test_a_run_copies_the_image_and_records_progress_and_where_blobs_went(target_registry, pushed):
    repository, digest, layers = pushed
    target = target_for(target_registry)
    mirror = mirror_ensure(repository=repository, digest=digest, target=target)
    done = mirror_run(mirror_id=mirror.pk, target=target)
    assert done.state == MirrorState.DONE, done.error
    assert (done.blobs_done, done.blobs_total) == (4, 4)
    assert done.bytes_done == done.bytes_total == sum(map(len, layers)) + repository.blob_links.order_by(
        "created_at").first().blob.size
    assert done.attempts == 1
    assert pulled(target_registry, "train/acme/trainer", digest).headers["Docker-Content-Digest"] == digest
    assert done.target_reference == f"{target.registry}/train/acme/trainer@{digest}"
    assert TargetBlob.objects.filter(target_repository="train/acme/trainer").count() == 4
    assert mirror_progress_text(done, "ECR") == "mirrored to ECR"
    assert mirror_run(mirror_id=mirror.pk, target=target) is None  # done: nothing to do


def test_a_second_repository_of_the_target_mounts_instead_of_receiving_bytes(target_registry, pushed):
    repository, digest, _ = pushed
    first = target_for(target_registry)
    mirror_run(mirror_id=mirror_ensure(repository=repository, digest=digest, target=first).pk, target=first)
    with front(target_registry) as counted:
        second = MirrorTarget(registry=counted.base.split("://")[1], repository="train/acme/copy", scheme="http",
                              credentials=lambda: Credentials(USER, PASSWORD))
        TargetBlob.objects.update(target_registry=second.registry)  # the same registry, seen through the front
        mirror = mirror_run(mirror_id=mirror_ensure(repository=repository, digest=digest, target=second).pk,
                            target=second)
    assert mirror.state == MirrorState.DONE, mirror.error
    assert counted.forwarded[("POST", "upload")] == 4  # four mounts
    assert counted.bytes_uploaded == 0


def test_two_workers_at_once_copy_the_mirror_once(target_registry, pushed):
    repository, digest, _ = pushed
    target = target_for(target_registry)
    mirror = mirror_ensure(repository=repository, digest=digest, target=target)
    barrier, results = threading.Barrier(2), []

    def worker():
        barrier.wait()
        try:
            results.append(mirror_run(mirror_id=mirror.pk, target=target))
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert sorted(r is None for r in results) == [False, True]
    mirror.refresh_from_db()
    assert (mirror.state, mirror.attempts) == (MirrorState.DONE, 1)


def test_a_copy_slower_than_its_lease_keeps_it_and_no_second_worker_starts(target_registry, pushed, monkeypatch):
    # A lease of a second, so the test need not wait out the real one: only the heartbeat can keep it.
    monkeypatch.setattr(mirror_module, "LEASE_SECONDS", 1)
    repository, digest, _ = pushed
    target = target_for(target_registry)
    mirror = mirror_ensure(repository=repository, digest=digest, target=target)
    stalled, resume, results = threading.Event(), threading.Event(), []
    real = copier_module.Copier.copy_blob

    def stall_once(self, blob):
        if not stalled.is_set():
            stalled.set()
            resume.wait(timeout=60)  # one slow chunk: no progress is reported meanwhile
        return real(self, blob)

    monkeypatch.setattr(copier_module.Copier, "copy_blob", stall_once)

    def first_worker():
        try:
            results.append(mirror_run(mirror_id=mirror.pk, target=target))
        finally:
            connection.close()

    thread = threading.Thread(target=first_worker)
    thread.start()
    try:
        assert stalled.wait(timeout=60)
        outlived = time.monotonic() + 3  # three leases
        wait_until(lambda: time.monotonic() > outlived, timeout=10, interval=0.2, message="the lease to be outlived")
        assert mirror.pk not in set(mirrors_due().values_list("pk", flat=True)), "the live copy's lease lapsed"
        assert mirror_run(mirror_id=mirror.pk, target=target) is None, "a second worker took over a live copy"
    finally:
        resume.set()
        thread.join(timeout=120)
    assert results[0].state == MirrorState.DONE, results[0].error
    assert results[0].attempts == 1


def test_a_run_killed_mid_blob_continues_without_resending_finished_blobs(target_registry, v2_operator, monkeypatch):
    monkeypatch.setattr(copier_module, "MONOLITHIC_MAX_BYTES", 1000)
    monkeypatch.setattr(copier_module, "CHUNK_UPLOAD_BYTES", 4000)
    small, big = b"small layer" * 10, bytes(range(256)) * 64
    digest = push_layers(v2_operator, "acme/trainer", [small, big])
    repository = Repository.objects.get(name="acme/trainer")
    target = target_for(target_registry)
    mirror = mirror_ensure(repository=repository, digest=digest, target=target)

    class Killed(BaseException):  # like SIGKILL: nothing of ours gets to record it
        pass

    real = copier_module.Copier.copy_blob

    def die_on_third_chunk(self, blob):
        if blob.size == len(big) and not getattr(self, "_died", False):
            original = self.progress.upload_progress

            def counting(digest_, location, offset):
                original(digest_, location, offset)
                if offset >= 8000:
                    self._died = True
                    raise Killed()
            self.progress.upload_progress = counting
        return real(self, blob)

    monkeypatch.setattr(copier_module.Copier, "copy_blob", die_on_third_chunk)
    monkeypatch.setattr(copier_module, "DEFAULT_PARALLEL_BLOBS", 1)
    with pytest.raises(Killed):
        mirror_run(mirror_id=mirror.pk, target=MirrorTarget(**{**target.__dict__, "parallel_blobs": 1}))
    monkeypatch.setattr(copier_module.Copier, "copy_blob", real)
    saved = MirrorBlob.objects.get(mirror=mirror, size=len(big))
    assert saved.upload_offset == 8000 and saved.done_at is None
    finished = set(MirrorBlob.objects.filter(mirror=mirror, done_at__isnull=False).values_list("digest", flat=True))
    assert len(finished) == 2  # the config and the small layer
    # The dead worker's lease expires; the next run takes over.
    Mirror.objects.filter(pk=mirror.pk).update(lease_until=mirror.created_at)
    assert mirror.pk in set(mirrors_due().values_list("pk", flat=True))
    with front(target_registry) as counted:
        saved.upload_location = saved.upload_location.replace(target_registry, counted.base)
        saved.save(update_fields=["upload_location"])
        via_front = MirrorTarget(registry=counted.base.split("://")[1], repository=target.repository, scheme="http",
                                 credentials=target.credentials, parallel_blobs=1)
        done = mirror_run(mirror_id=mirror.pk, target=via_front)
    assert done.state == MirrorState.DONE, done.error
    assert done.attempts == 2
    assert counted.bytes_uploaded == len(big) - 8000
    assert not [path for path in counted.paths if any(d in path for d in finished)]
    assert blob_at(target_registry, "train/acme/trainer", saved.digest) == big
    assert pulled(target_registry, "train/acme/trainer", digest).headers["Docker-Content-Digest"] == digest


def test_refused_credentials_fail_the_mirror_permanently_and_retry_puts_it_back(target_registry, pushed):
    repository, digest, _ = pushed
    bad = target_for(target_registry, password="wrong")
    mirror = mirror_ensure(repository=repository, digest=digest, target=bad)
    failed = mirror_run(mirror_id=mirror.pk, target=bad)
    assert failed.state == MirrorState.FAILED
    assert "401" in failed.error
    assert "failed" in mirror_progress_text(failed, "ECR")
    assert mirror_retry(mirror=failed)
    good = target_for(target_registry)
    assert mirror_run(mirror_id=mirror.pk, target=good).state == MirrorState.DONE


def test_an_unreachable_target_is_transient_and_retried_later(pushed, monkeypatch):
    repository, digest, _ = pushed
    nowhere = MirrorTarget(registry="127.0.0.1:9", repository="train/acme/trainer", scheme="http",
                           credentials=lambda: Credentials(USER, PASSWORD))
    mirror = mirror_ensure(repository=repository, digest=digest, target=nowhere)
    monkeypatch.setattr(OciClient, "__init__", partialmethod(OciClient.__init__, max_tries=1, backoff_seconds=0))
    after = mirror_run(mirror_id=mirror.pk, target=nowhere)
    assert after.state == MirrorState.PENDING
    assert "failed" in after.error
    assert after.next_attempt_at > timezone.now()
    assert mirror.pk not in set(mirrors_due().values_list("pk", flat=True))
