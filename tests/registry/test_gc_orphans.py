"""Blob files without a row (a PUT killed between promote and its transaction) are deleted after the
grace period, in both stores; a push of that digest in the meantime adopts the file."""

import os

import pytest

from registry.gc import GcReport, gc_run, orphans_sweep
from registry.models import Blob
from registry.store import get_store
from tests.registry.conftest import digest_of
from tests.registry.gc_support import hours_later, orphan_left_by_a_killed_put, private_store  # noqa: F401
from tests.registry.test_s3_store import s3_endpoint, s3_store  # noqa: F401 (fixtures)


def check_orphan_reclaimed_after_grace(v2):
    data = os.urandom(3000)
    digest = digest_of(data)
    orphan_left_by_a_killed_put(v2, "acme/app", data, digest)
    store = get_store()
    early = gc_run(now=hours_later(23))
    assert (early.count("orphans"), early.count("uploads")) == (0, 1)  # the killed PUT's idle session goes
    assert store.blob_exists(digest)
    report = gc_run(now=hours_later(25))
    assert (report.count("orphans"), report.sizes["orphans"]) == (1, 3000)
    assert not store.blob_exists(digest) and not Blob.objects.exists()
    v2.push_blob("acme/app", data)  # and a later push of that digest stores it again
    assert v2.get(f"/v2/acme/app/blobs/{digest}").getvalue() == data


@pytest.mark.usefixtures("private_store")
def test_orphan_file_is_reclaimed_after_the_grace(v2_operator):
    check_orphan_reclaimed_after_grace(v2_operator)


@pytest.mark.usefixtures("s3_store")
def test_orphan_object_is_reclaimed_after_the_grace_on_s3(v2_operator):
    check_orphan_reclaimed_after_grace(v2_operator)


@pytest.mark.usefixtures("private_store")
def test_a_push_of_the_orphaned_digest_adopts_the_file(v2_operator):
    data = b"pushed again before the sweep"
    digest = digest_of(data)
    orphan_left_by_a_killed_put(v2_operator, "acme/app", data, digest)
    v2_operator.push_blob("acme/app", data)
    report = GcReport()
    orphans_sweep(cutoff=hours_later(1), report=report)  # the file is older than the cutoff
    assert report.count("orphans") == 0
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest}").getvalue() == data
