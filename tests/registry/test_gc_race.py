"""Garbage collection racing pushes, on PostgreSQL with real row locks: a manifest PUT naming blobs
past their grace either fails with MANIFEST_BLOB_UNKNOWN (and the blobs are gone) or succeeds (and the
blobs stay); an upload finishing a blob the sweep is deleting stores it again. Never a stored manifest
with a missing blob. Each interleaving is forced with events, then both sides run behind a barrier."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from registry import gc
from registry.gc import gc_run
from registry.models import Blob, ManifestReference, RepositoryBlob
from registry.store import get_store
from tests.registry.conftest import V2, error_code
from tests.registry.gc_support import hours_later, private_store  # noqa: F401 (fixture)
from tests.support.processes import wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("postgres", "private_store")]
WAIT_SECONDS = 60


@pytest.fixture
def postgres():
    if connection.vendor != "postgresql":
        if os.environ.get("CI"):
            pytest.fail("the GC race tests need PostgreSQL (DATABASE_URL)")
        pytest.skip("the race is decided by PostgreSQL row locks")


def in_thread(func):
    """`func` for another thread: its own database connection, closed at the end."""
    def run():
        try:
            return func()
        finally:
            connection.close()
    return run


def lock_waiters() -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                       "AND wait_event_type = 'Lock'")
        return cursor.fetchone()[0]


def blobs_of(document) -> list[str]:
    return [document["config"]["digest"]] + [layer["digest"] for layer in document["layers"]]


def unreferenced_image(v2, seed: str) -> dict:
    """An image whose manifest was deleted: its blobs wait for the sweep, while a client that pushed
    them (and saw HEAD 200) may still put a manifest naming them."""
    digest, document = v2.push_image("acme/app", seed, seed=seed)
    assert v2.request("DELETE", f"/v2/acme/app/manifests/{digest}").status_code == 202
    return document


def put(caller, document, tag: str):
    def run():
        response = V2(caller).push_manifest("acme/app", tag, document)
        return "stored" if response.status_code == 201 else error_code(response)
    return in_thread(run)


def sweep():
    return in_thread(lambda: gc_run(now=hours_later(25)))()


def assert_every_manifest_has_its_blobs():
    store = get_store()
    for reference in ManifestReference.objects.filter(kind=ManifestReference.BLOB).select_related("manifest"):
        linked = RepositoryBlob.objects.filter(repository_id=reference.manifest.repository_id,
                                               blob__digest=reference.digest)
        assert linked.exists() and store.blob_exists(reference.digest), reference


def test_a_put_reaching_blobs_the_sweep_is_unlinking_is_refused(v2_operator, monkeypatch):
    document = unreferenced_image(v2_operator, "a")
    unlinking, release = threading.Event(), threading.Event()
    original = gc._blob_links_remove

    def held(blob_id, cutoff):  # inside the sweep's transaction, holding the blob's lock
        result = original(blob_id, cutoff)
        unlinking.set()
        release.wait(WAIT_SECONDS)
        return result

    monkeypatch.setattr(gc, "_blob_links_remove", held)
    with ThreadPoolExecutor(2) as pool:
        swept = pool.submit(sweep)
        assert unlinking.wait(WAIT_SECONDS)
        pushed = pool.submit(put(v2_operator.caller, document, "a"))
        wait_until(lambda: lock_waiters() >= 1, timeout=WAIT_SECONDS, message="the PUT waiting on the blob lock")
        release.set()
        assert pushed.result(WAIT_SECONDS) == "MANIFEST_BLOB_UNKNOWN"
        assert swept.result(WAIT_SECONDS).count("blobs") == 2
    assert not Blob.objects.exists() and not any(get_store().blob_exists(b) for b in blobs_of(document))
    assert_every_manifest_has_its_blobs()


def test_a_sweep_reaching_blobs_a_put_is_committing_keeps_them(v2_operator, monkeypatch):
    document = unreferenced_image(v2_operator, "b")
    recorded, release = threading.Event(), threading.Event()
    original = ManifestReference.record.__func__

    def held(cls, manifest, *, blobs, children):  # inside manifest_put's transaction, blobs locked
        original(cls, manifest, blobs=blobs, children=children)
        recorded.set()
        release.wait(WAIT_SECONDS)

    monkeypatch.setattr(ManifestReference, "record", classmethod(held))
    with ThreadPoolExecutor(2) as pool:
        pushed = pool.submit(put(v2_operator.caller, document, "b"))
        assert recorded.wait(WAIT_SECONDS)
        swept = pool.submit(sweep)
        wait_until(lambda: lock_waiters() >= 1, timeout=WAIT_SECONDS, message="the sweep waiting on the blob lock")
        release.set()
        assert pushed.result(WAIT_SECONDS) == "stored"
        report = swept.result(WAIT_SECONDS)
    assert (report.count("links"), report.count("blobs")) == (0, 0)
    layer = blobs_of(document)[1]
    assert v2_operator.get(f"/v2/acme/app/blobs/{layer}").getvalue() == b"layer-b" * 10
    assert_every_manifest_has_its_blobs()


def test_an_upload_finishing_a_blob_the_sweep_is_deleting_stores_it_again(v2_operator, monkeypatch):
    data = b"a layer pushed again just as the sweep deletes it"
    digest = v2_operator.push_blob("acme/app", data)
    store = get_store()
    deleting, release = threading.Event(), threading.Event()
    original = store.blob_delete

    def held(blob_digest):  # inside the sweep's transaction, the file gone, the row still locked
        original(blob_digest)
        deleting.set()
        release.wait(WAIT_SECONDS)

    monkeypatch.setattr(store, "blob_delete", held)
    with ThreadPoolExecutor(2) as pool:
        swept = pool.submit(sweep)
        assert deleting.wait(WAIT_SECONDS)
        pushed = pool.submit(in_thread(lambda: V2(v2_operator.caller).push_blob("acme/app", data)))
        wait_until(lambda: lock_waiters() >= 1, timeout=WAIT_SECONDS, message="the upload waiting on the blob lock")
        release.set()
        assert pushed.result(WAIT_SECONDS) == digest
        assert swept.result(WAIT_SECONDS).count("blobs") == 1
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest}").getvalue() == data


def at_once(count: int):
    """Wraps functions so that `count` of them start together (behind one barrier)."""
    barrier = threading.Barrier(count)

    def together(func):
        return lambda: (barrier.wait(WAIT_SECONDS), func())[1]
    return together


def test_sweeps_and_puts_at_the_same_instant_never_lose_a_referenced_blob(v2_operator):
    outcomes = set()
    for round_ in range(6):
        seed = f"r{round_}"
        document = unreferenced_image(v2_operator, seed)
        together = at_once(2)
        with ThreadPoolExecutor(2) as pool:
            pushed = pool.submit(together(put(v2_operator.caller, document, seed)))
            pool.submit(together(sweep)).result(WAIT_SECONDS)
            outcome = pushed.result(WAIT_SECONDS)
        outcomes.add(outcome)
        present = [get_store().blob_exists(blob) for blob in blobs_of(document)]
        if outcome == "stored":
            assert all(present)
        else:
            assert outcome == "MANIFEST_BLOB_UNKNOWN"
            sweep()  # the sweep may have lost one blob's lock to the refused PUT: the next run finishes
            assert not any(get_store().blob_exists(blob) for blob in blobs_of(document))
        assert_every_manifest_has_its_blobs()
    assert outcomes <= {"stored", "MANIFEST_BLOB_UNKNOWN"}
