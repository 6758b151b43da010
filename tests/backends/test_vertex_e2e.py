"""The whole promise for Vertex AI, through the REST API with a real gateway and worker and
TRAIN_CLOUD_EMULATOR pointing at the fake cloud: an admin configures vertex-ai with its usual fields
alone (Train's own Google credentials come from the emulator's token endpoint), skopeo pushes an image
to Train, a member submits a job naming its tag with every field, Train mirrors the pinned digest to
the account's Artifact Registry (Google's token flow in front of a real Distribution registry that
verifies every token), and Vertex AI (the fake) is asked, once, to run exactly that digest. The job
follows the cloud to COMPLETED; a failing one shows Vertex's error and its Cloud Logging tail."""

import subprocess

import pytest
import requests

from backends.gcp.vertex import build_request
from jobs.models import Job, JobEvent
from jobs.services import job_spec
from tests.backends.conftest import RUN_AS_SA, TENANT_SA, VERTEX_CONFIG
from tests.conftest import require_tool
from tests.fakecloud.registry_auth import pulled_digest, registry_auth_fake
from tests.fakecloud.vertex import ArtifactRegistryProxy
from tests.registry.ocilayout import build_image
from tests.support.processes import gunicorn, qcluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BODY = {
    "name": "llama-sft-4", "backend": "vertex-ai", "image": "localhost:8000/acme/trainer:v3",
    "command": ["python", "train.py"], "args": ["--epochs", "3"], "env": {"WANDB_PROJECT": "sft"},
    "resources": {"machine_type": "a2-highgpu-1g", "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 1,
                  "instance_count": 2},
    "storage_mounts": [{"source": "gs://acme-data/corpus", "mode": "ro"},
                       {"source": "gs://acme-data/checkpoints/sft-4", "mode": "rw"}],
    "max_runtime_seconds": 7200, "labels": {"team": "nlp"}, "backend_options": {"spot": True},
}


def skopeo(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([require_tool("skopeo"), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def _states():
    from registry.models import Mirror

    jobs = [(j.name, j.status, j.submission, j.status_message) for j in Job.objects.all()]
    return f"{jobs} {[(m.state, m.error) for m in Mirror.objects.all()]}"


def tag_in_artifact_registry(fake_cloud, path: str, digest: str, tag: str) -> None:
    """Tag a manifest the account's Artifact Registry repository holds, as its service account would."""
    from backends.gcp.artifact_registry import artifact_registry_target
    from registry.client import MANIFEST_ACCEPT

    target = artifact_registry_target(project="acme-ml", region="europe-west4", repository="train-images", path=path,
                                      service_account=TENANT_SA, iam_endpoint_url=fake_cloud.url,
                                      registry_endpoint_url=fake_cloud.url)
    client, repository = target.client(), target.repository
    manifest = client.request("GET", f"/v2/{repository}/manifests/{digest}", headers={"Accept": MANIFEST_ACCEPT},
                              scope=f"repository:{repository}:pull")
    client.manifest_put(repository, tag, manifest.headers["Content-Type"], manifest.content)


def wait_for(base, caller, job_id, statuses, *, with_log_tail=False):
    def reached():
        body = requests.get(f"{base}/v1/jobs/{job_id}", headers=caller.http_headers, timeout=5).json()
        return body if body["status"] in statuses and (body["log_tail"] or not with_log_tail) else None

    return wait_until(reached, timeout=60, interval=0.3, message=f"{job_id} to reach {statuses}")


def test_an_image_pushed_to_train_runs_on_vertex_ai_by_digest(operator, member, fake_cloud, google_emulated,
                                                              tmp_path):
    vertex = fake_cloud.vertex
    ended = {"COMPLETED", "FAILED", "CANCELED", "EXPIRED"}
    built = build_image(tmp_path / "layout", "v3", seed=911, layers=2)
    with registry_auth_fake(tmp_path / "ar", "gcp") as ar:
        ar.service_accounts = {TENANT_SA}
        vertex.tokens = ar  # Google's access tokens: one issuer for Vertex, IAM and Artifact Registry
        fake_cloud.add(ArtifactRegistryProxy(ar).bind(fake_cloud))
        with gunicorn(tmp_path, **google_emulated) as base, qcluster(tmp_path, **google_emulated):
            put = requests.put(f"{base}/v1/backends/vertex-ai", json={"config": VERTEX_CONFIG},
                               headers=operator.http_headers, timeout=30)
            assert put.status_code == 200, put.text
            host = base.removeprefix("http://")
            skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"acme:{member.plaintext}",
                   f"oci:{tmp_path / 'layout'}:v3", f"docker://{host}/acme/trainer:v3")

            created = requests.post(f"{base}/v1/jobs", json=BODY, headers=member.http_headers, timeout=10)
            assert created.status_code == 201, created.text
            job_id = created.json()["id"]
            assert created.json()["image_digest"] == built.digest
            # A tag Train cannot resolve (the repository has no such tag) runs as given.
            doomed = {**BODY, "name": "doomed", "image": "europe-west4-docker.pkg.dev/acme-ml/images/trainer:v1",
                      "resources": {"machine_type": "g2-standard-12"}, "backend_options": {}}
            failing = requests.post(f"{base}/v1/jobs", json=doomed, headers=member.http_headers, timeout=10)
            assert failing.status_code == 201, failing.text
            failing_id = failing.json()["id"]
            try:
                wait_until(lambda: len(vertex.creates) == 2 and all(j.remote_id for j in Job.objects.all()),
                           timeout=90, message="both custom jobs created, the first after its mirror")
            except AssertionError as exc:
                raise AssertionError(f"{exc}: {_states()}") from None

            job = Job.objects.get(pk=job_id)
            # Mirrored through the emulator's registry; Vertex pulls it from the regional host.
            reference = f"europe-west4-docker.pkg.dev/acme-ml/train-images/acme/trainer@{built.digest}"
            assert job.cloud_image == reference
            assert pulled_digest(ar, "acme-ml/train-images/acme/trainer", built.digest) == built.digest
            sent = next(body for body in vertex.creates if body["labels"]["train-job-id"] == job.id)
            assert sent == build_request(job_spec(job), job.backend_config)
            pools = sent["jobSpec"]["workerPoolSpecs"]
            container = pools[0]["containerSpec"]
            assert container["imageUri"] == reference and container["command"] == ["python", "train.py"]
            assert container["args"] == ["--epochs", "3"]
            env = {item["name"]: item["value"] for item in container["env"]}
            assert env["WANDB_PROJECT"] == "sft" and env["TRAIN_JOB_ID"] == job.id
            assert env["STORAGE_MOUNT_0_PATH"] == "/gcs/acme-data/corpus"
            assert env["STORAGE_MOUNT_1_PATH"] == "/gcs/acme-data/checkpoints/sft-4"
            assert [pool["replicaCount"] for pool in pools] == ["1", "1"]
            assert pools[0]["machineSpec"] == {"machineType": "a2-highgpu-1g", "acceleratorType": "NVIDIA_TESLA_A100",
                                               "acceleratorCount": 1}
            assert sent["jobSpec"]["scheduling"] == {"timeout": "7200s", "strategy": "SPOT"}
            assert sent["jobSpec"]["serviceAccount"] == RUN_AS_SA
            assert sent["jobSpec"]["baseOutputDirectory"] == {"outputUriPrefix": f"gs://acme-models/train/{job.id}/"}
            assert sent["labels"] == {"team": "nlp", "train-job-id": job.id, "train-account": "acme"}
            assert sent["displayName"] == "llama-sft-4"
            assert vertex.creators == [TENANT_SA, TENANT_SA]
            doomed_sent = next(body for body in vertex.creates if body["labels"]["train-job-id"] == failing_id)
            assert doomed_sent["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"] == doomed["image"]

            # A tag in the account's Artifact Registry runs the digest it named at submission.
            tag_in_artifact_registry(fake_cloud, "acme/trainer", built.digest, "stable")
            tagged = {**BODY, "name": "tagged",
                      "image": "europe-west4-docker.pkg.dev/acme-ml/train-images/acme/trainer:stable",
                      "resources": {"machine_type": "g2-standard-12"}, "backend_options": {}}
            created = requests.post(f"{base}/v1/jobs", json=tagged, headers=member.http_headers, timeout=10)
            assert created.status_code == 201, created.text
            wait_until(lambda: len(vertex.creates) == 3, timeout=60, message="the tagged job's custom job")
            tagged_id = created.json()["id"]
            tagged_sent = next(body for body in vertex.creates if body["labels"]["train-job-id"] == tagged_id)
            assert tagged_sent["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"] == reference
            shown = requests.get(f"{base}/v1/jobs/{tagged_id}", headers=member.http_headers, timeout=10).json()
            assert (shown["image_digest"], shown["cloud_image"]) == (built.digest, reference), "which digest ran"

            vertex.start(job.remote_id)
            running = wait_for(base, member, job_id, {"IN_PROGRESS"})
            assert running["sub_status"] == "RUNNING" and running["started_at"]
            vertex.complete(job.remote_id)
            done = wait_for(base, member, job_id, ended)

            remote = Job.objects.get(pk=failing_id).remote_id
            vertex.start(remote)
            vertex.write_logs(remote, ["epoch 1", "CUDA error: out of memory"])
            vertex.fail(remote, "The replica workerpool0-0 exited with a non-zero status of 1.")
            failed = wait_for(base, member, failing_id, ended, with_log_tail=True)
            logs = requests.get(f"{base}/v1/jobs/{failing_id}/logs", headers=member.http_headers, timeout=10).json()

    assert done["status"] == "COMPLETED" and done["sub_status"] == "SUCCEEDED" and done["finished_at"]
    assert done["remote_id"] == job.remote_id and done["cloud_image"] == reference
    assert done["console_url"].endswith(f"/training/{job.remote_id.rsplit('/', 1)[1]}/cpu?project=acme-ml")
    assert failed["status"] == "FAILED"
    assert failed["status_message"] == "The replica workerpool0-0 exited with a non-zero status of 1."
    assert failed["log_tail"] == ["epoch 1", "CUDA error: out of memory"]
    assert logs == {"lines": ["epoch 1", "CUDA error: out of memory"]}
    assert vertex.jobs_tagged(job_id) == [job.remote_id], "exactly one CustomJob for the job"
    assert len(vertex.creates) == 3
    for each in (job_id, failing_id):
        assert JobEvent.objects.filter(job_id=each, to_status__in=["COMPLETED", "FAILED"]).count() == 1
