"""Mark and sweep of blobs: what no manifest references goes after the grace period, nothing before,
and a blob another repository's manifest still names stays there."""

import io
import os

import pytest
from django.core.management import call_command
from django.utils import timezone

from registry.gc import gc_run
from registry.models import Blob, ManifestReference, RepositoryBlob, Upload
from registry.services import account_stored_bytes
from registry.store import get_store
from tests.registry.conftest import digest_of
from tests.registry.gc_support import hours_later, orphan_left_by_a_killed_put, private_store  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("private_store")


def blobs_of(document) -> list[str]:
    return [document["config"]["digest"]] + [layer["digest"] for layer in document["layers"]]


def test_blobs_of_a_deleted_manifest_are_reclaimed_after_the_grace(v2_operator):
    digest, document = v2_operator.push_image("acme/app", "v1")
    assert v2_operator.request("DELETE", f"/v2/acme/app/manifests/{digest}").status_code == 202
    store = get_store()

    assert gc_run(now=hours_later(23)).count("blobs") == 0  # pushed less than a day ago
    assert all(store.blob_exists(blob) for blob in blobs_of(document))

    report = gc_run(now=hours_later(25))
    assert (report.count("links"), report.count("blobs")) == (2, 2)
    assert not Blob.objects.exists() and not any(store.blob_exists(blob) for blob in blobs_of(document))
    assert v2_operator.head(f"/v2/acme/app/blobs/{blobs_of(document)[1]}").status_code == 404
    assert account_stored_bytes(account_id="acme") == 0  # the quota is freed too
    assert gc_run(now=hours_later(25)).counts == {}  # a second delivery finds nothing


def test_a_blob_another_repository_references_is_kept(v2_operator):
    digest, document = v2_operator.push_image("acme/app", "v1")
    for blob in blobs_of(document):
        query = {"mount": blob, "from": "acme/app"}
        mounted = v2_operator.request("POST", "/v2/acme/other/blobs/uploads/", query=query)
        assert mounted.status_code == 201
    assert v2_operator.push_manifest("acme/other", "v1", document).status_code == 201
    assert v2_operator.request("DELETE", f"/v2/acme/app/manifests/{digest}").status_code == 202

    report = gc_run(now=hours_later(25))
    assert (report.count("links"), report.count("blobs")) == (2, 0)  # only acme/app's links go
    layer = blobs_of(document)[1]
    assert v2_operator.head(f"/v2/acme/app/blobs/{layer}").status_code == 404
    assert v2_operator.get(f"/v2/acme/other/blobs/{layer}").getvalue() == b"layer-x" * 10
    assert v2_operator.get("/v2/acme/other/manifests/v1").status_code == 200


def test_a_fresh_blob_waits_for_its_manifest(v2_operator):
    config = b'{"architecture": "amd64", "os": "linux"}'
    v2_operator.push_blob("acme/app", config)
    assert gc_run(now=hours_later(23)).counts == {}
    document = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": [],
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest_of(config),
                           "size": len(config)}}
    assert v2_operator.push_manifest("acme/app", "v1", document).status_code == 201  # the client's late PUT
    assert gc_run(now=hours_later(48)).counts == {}  # referenced now: kept for good
    assert get_store().blob_exists(digest_of(config))


def test_pushing_a_blob_again_restarts_its_grace(v2_operator):
    digest = v2_operator.push_blob("acme/app", b"base layer")
    RepositoryBlob.objects.update(pushed_at=timezone.now() - timezone.timedelta(days=3))
    v2_operator.push_blob("acme/app", b"base layer")  # a new push that will name it soon
    assert gc_run(now=hours_later(23)).counts == {}
    assert get_store().blob_exists(digest)


def test_manifests_stored_without_references_get_them_before_the_sweep(v2_operator):
    _, document = v2_operator.push_image("acme/app", "v1")
    ManifestReference.objects.all().delete()  # as stored by a version before the table
    report = gc_run(now=hours_later(48))
    assert report.count("references") == 1 and report.count("blobs") == 0
    assert set(ManifestReference.objects.values_list("digest", flat=True)) == set(blobs_of(document))


def test_dry_run_removes_nothing_and_says_what_it_would(v2_operator):
    digest, document = v2_operator.push_image("acme/app", "v1")
    v2_operator.request("DELETE", f"/v2/acme/app/manifests/{digest}")
    long_ago = timezone.now() - timezone.timedelta(days=2)
    RepositoryBlob.objects.update(pushed_at=long_ago)
    Blob.objects.update(created_at=long_ago)
    orphan = b"left by a killed PUT"
    orphan_left_by_a_killed_put(v2_operator, "acme/app", orphan, digest_of(orphan))
    os.utime(get_store()._blob_path(digest_of(orphan)), (long_ago.timestamp(),) * 2)
    Upload.objects.update(updated_at=long_ago)

    out = io.StringIO()
    call_command("registry_gc", "--dry-run", stdout=out)
    assert "would remove 2 repository links" in out.getvalue()
    assert "would remove 2 blobs no repository links (" in out.getvalue()
    assert f"would remove 1 blob files without a row ({len(orphan)} bytes)" in out.getvalue()
    assert f"would remove 1 idle or expired upload sessions ({len(orphan)} bytes)" in out.getvalue()
    assert Blob.objects.count() == 2 and RepositoryBlob.objects.count() == 2 and Upload.objects.count() == 1
    assert all(get_store().blob_exists(blob) for blob in [*blobs_of(document), digest_of(orphan)])

    out = io.StringIO()
    call_command("registry_gc", stdout=out)
    assert "removed 2 blobs no repository links" in out.getvalue()
    assert "removed 1 blob files without a row" in out.getvalue()
    assert not Blob.objects.exists() and not Upload.objects.exists()
    assert not get_store().blob_exists(digest_of(orphan))


def test_a_run_out_of_time_stops_and_the_next_one_finishes(v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    v2_operator.request("DELETE", f"/v2/acme/app/manifests/{digest}")
    stopped = gc_run(now=hours_later(25), budget_seconds=0)
    assert stopped.stopped and stopped.count("blobs") == 0
    assert "stopped at the time budget" in stopped.lines()[-1]
    assert gc_run(now=hours_later(25)).count("blobs") == 2
