"""The OCI copier writes an image from Train's store into a real registry (Debian's Distribution),
by digest, byte for byte: HEAD before upload, children before parents, the manifest last, retries of
429/5xx, resumption of a half-sent blob, and the target's Basic auth."""

import json

import pytest
import requests

from registry import copier as copier_module
from registry.client import Credentials, OciClient
from registry.copier import Copier, CopyError, MemoryProgress, plan_copy
from registry.models import Repository
from tests.registry.conftest import OCI_INDEX, OCI_MANIFEST, digest_of
from tests.support.distribution import distribution
from tests.support.frontproxy import front

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]

USER, PASSWORD = "mirror", "s3cret-pass"


@pytest.fixture
def target(tmp_path):
    with distribution(tmp_path / "distribution", users={USER: PASSWORD}) as base:
        yield base


def client_for(base: str, **options) -> OciClient:
    return OciClient(base, lambda: Credentials(USER, PASSWORD), backoff_seconds=0.01, **options)


def push_layers(v2, name: str, layers: list[bytes], *, seed="x") -> str:
    config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
    document = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": v2.push_blob(name, config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": v2.push_blob(name, layer),
                    "size": len(layer)} for layer in layers],
    }
    response = v2.push_manifest(name, "v1", document)
    assert response.status_code == 201, response.content
    return response["Docker-Content-Digest"]


def pulled(base: str, repository: str, reference: str):
    auth = (USER, PASSWORD)
    response = requests.get(f"{base}/v2/{repository}/manifests/{reference}", auth=auth, timeout=30,
                            headers={"Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})
    assert response.status_code == 200, response.text
    return response


def blob_at(base: str, repository: str, digest: str) -> bytes:
    response = requests.get(f"{base}/v2/{repository}/blobs/{digest}", auth=(USER, PASSWORD), timeout=30)
    assert response.status_code == 200, response.text
    return response.content


def copy(base, name, digest, progress=None, **options):
    repository = Repository.objects.get(name=name)
    plan = plan_copy(repository=repository, digest=digest)
    return Copier(client_for(base), "train/acme/trainer", progress or MemoryProgress(), **options).copy(plan), plan


def test_an_image_arrives_byte_identical_under_its_digest(target, v2_operator):
    layers = [b"layer one " * 1000, b"layer two " * 2000]
    digest = push_layers(v2_operator, "acme/trainer", layers)
    stored, _plan = copy(target, "acme/trainer", digest)
    assert stored == digest
    manifest = pulled(target, "train/acme/trainer", digest)
    assert manifest.headers["Docker-Content-Digest"] == digest
    assert digest_of(manifest.content) == digest
    for layer in layers:
        assert blob_at(target, "train/acme/trainer", digest_of(layer)) == layer


def test_a_two_platform_index_copies_children_before_the_index(target, v2_operator):
    first = push_layers(v2_operator, "acme/trainer", [b"amd64 layer" * 50], seed="amd64")
    second = push_layers(v2_operator, "acme/trainer", [b"arm64 layer" * 50], seed="arm64")
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child, "size": len(pulled_train(v2_operator, child)),
         "platform": {"architecture": arch, "os": "linux"}} for child, arch in ((first, "amd64"), (second, "arm64"))]}
    response = v2_operator.push_manifest("acme/trainer", "multi", index, OCI_INDEX)
    assert response.status_code == 201, response.content
    digest = response["Docker-Content-Digest"]
    _stored, plan = copy(target, "acme/trainer", digest)
    assert [m.digest for m in plan.manifests] == [first, second, digest]
    assert pulled(target, "train/acme/trainer", digest).headers["Docker-Content-Digest"] == digest
    assert pulled(target, "train/acme/trainer", second).headers["Docker-Content-Digest"] == second


def pulled_train(v2, digest) -> bytes:
    return v2.get(f"/v2/acme/trainer/manifests/{digest}", HTTP_ACCEPT=OCI_MANIFEST).content


def test_blobs_the_target_has_are_not_sent_again(target, v2_operator):
    layers = [f"layer {i} ".encode() * 500 for i in range(4)]
    first = push_layers(v2_operator, "acme/trainer", layers[:3], seed="a")
    copy(target, "acme/trainer", first)
    second = push_layers(v2_operator, "acme/trainer", layers, seed="a")  # one new layer, same config
    with front(target) as counted:
        repository = Repository.objects.get(name="acme/trainer")
        progress = MemoryProgress()
        Copier(client_for(counted.base), "train/acme/trainer", progress).copy(
            plan_copy(repository=repository, digest=second))
    uploads = counted.forwarded[("PUT", "upload")]
    assert uploads == 1, counted.forwarded
    assert counted.bytes_uploaded == len(layers[3])
    assert sum(1 for sent in progress.done.values() if sent) == 1


def test_429_and_5xx_from_the_target_are_retried_to_a_complete_copy(target, v2_operator):
    layers = [f"faulty {i} ".encode() * 300 for i in range(6)]
    digest = push_layers(v2_operator, "acme/trainer", layers)
    with front(target, fault_rate=0.3, seed=20261201) as flaky:
        repository = Repository.objects.get(name="acme/trainer")
        client = OciClient(flaky.base, lambda: Credentials(USER, PASSWORD), backoff_seconds=0.01, max_tries=12)
        stored = Copier(client, "train/acme/trainer", MemoryProgress()).copy(
            plan_copy(repository=repository, digest=digest))
    assert flaky.faults > 0
    assert stored == digest
    for layer in layers:
        assert blob_at(target, "train/acme/trainer", digest_of(layer)) == layer


def test_a_copy_killed_mid_blob_resumes_at_the_targets_offset(target, v2_operator, monkeypatch):
    monkeypatch.setattr(copier_module, "MONOLITHIC_MAX_BYTES", 1000)
    monkeypatch.setattr(copier_module, "CHUNK_UPLOAD_BYTES", 4000)
    big = bytes(range(256)) * 64  # 16 KiB: four chunks
    digest = push_layers(v2_operator, "acme/trainer", [big])
    repository = Repository.objects.get(name="acme/trainer")
    plan = plan_copy(repository=repository, digest=digest)
    progress = MemoryProgress()

    class Killed(Exception):
        pass

    real = progress.upload_progress

    def die_after_two_chunks(blob_digest, location, offset):
        real(blob_digest, location, offset)
        if offset >= 8000:
            raise Killed()

    monkeypatch.setattr(progress, "upload_progress", die_after_two_chunks)
    with pytest.raises(Killed):
        Copier(client_for(target), "train/acme/trainer", progress, parallel_blobs=1).copy(plan)
    monkeypatch.setattr(progress, "upload_progress", real)
    with front(target) as counted:
        # The saved session URL names the registry itself; send the resume through the counting front.
        progress.uploads = {d: (loc.replace(target, counted.base), off) for d, (loc, off) in progress.uploads.items()}
        Copier(client_for(counted.base), "train/acme/trainer", progress, parallel_blobs=1).copy(plan)
    assert blob_at(target, "train/acme/trainer", digest_of(big)) == big
    # Only what the target did not hold went up again: bytes 8000-16383, in chunks of 4000.
    assert counted.forwarded[("PATCH", "upload")] == 3
    assert counted.bytes_uploaded == len(big) - 8000


def test_wrong_credentials_are_a_permanent_failure(target, v2_operator):
    digest = push_layers(v2_operator, "acme/trainer", [b"x" * 10])
    repository = Repository.objects.get(name="acme/trainer")
    client = OciClient(target, lambda: Credentials(USER, "wrong"), backoff_seconds=0.01)
    with pytest.raises(CopyError) as failure:
        Copier(client, "train/acme/trainer", MemoryProgress()).copy(plan_copy(repository=repository, digest=digest))
    assert failure.value.permanent
    assert "401" in failure.value.message
