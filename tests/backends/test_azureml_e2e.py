"""The whole promise on Azure ML, through the REST API with a real gateway and worker: an admin
configures azure-ml (Train verifies the workspace's train-account tag as its own app), skopeo pushes
an image to Train, a member submits a job naming its tag with every field, Train mirrors the pinned
digest into the workspace's ACR (Entra ID token -> ACR refresh token -> a real token-auth Distribution
registry), and Azure ML (the fake cloud) gets one command job carrying every field, which is followed
to COMPLETED with its logs readable."""

import subprocess

import pytest
import requests

from backends.azure.translation import build_request
from jobs.models import Job, JobEvent
from jobs.services import job_spec
from tests.backends.azureml_support import TENANT, TRAIN_APP, TRAIN_APP_SECRET, azure_env, config_for
from tests.backends.conftest import WORKER_ENV
from tests.conftest import require_tool
from tests.fakecloud.registry_auth import pulled_digest, registry_auth_fake
from tests.registry.ocilayout import build_image
from tests.support.processes import gunicorn, qcluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def skopeo(*args) -> subprocess.CompletedProcess:
    result = subprocess.run([require_tool("skopeo"), *args], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result


def tag_in_acr(acr, repository: str, digest: str, tag: str) -> None:
    """Tag a manifest in the ACR fake's registry, as a customer pushing there would."""
    token = acr.registry_jwt("customer", [f"repository:{repository}:pull,push"])["token"]
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json"
    headers = {"Authorization": f"Bearer {token}", "Accept": accept}
    manifest = requests.get(f"{acr.upstream}/v2/{repository}/manifests/{digest}", headers=headers, timeout=30)
    assert manifest.status_code == 200, manifest.text
    put = requests.put(f"{acr.upstream}/v2/{repository}/manifests/{tag}", data=manifest.content, timeout=30,
                       headers={**headers, "Content-Type": manifest.headers["Content-Type"]})
    assert put.status_code == 201, put.text


def test_an_image_pushed_to_train_runs_on_azure_ml_from_acr(operator, member, fake_cloud, azure, tmp_path):
    built = build_image(tmp_path / "layout", "v3", seed=1101, layers=2)
    with registry_auth_fake(tmp_path / "acr", "azure") as acr:
        # One Entra ID for both audiences: the ACR fake issues Train's tokens, the ARM fake accepts them.
        acr.apps[TENANT] = {TRAIN_APP: TRAIN_APP_SECRET}
        azure.token_check = lambda token: (acr.valid(token, "entra") or "").split("/")[0] or None
        env = {**WORKER_ENV, **azure_env(fake_cloud), "TRAIN_AZURE_AUTHORITY": acr.base,
               "REQUESTS_CA_BUNDLE": str(acr.ca_bundle)}
        with gunicorn(tmp_path, **env) as base, qcluster(tmp_path, **env):
            config = config_for(fake_cloud, acr="acmeimages.azurecr.io", registry_endpoint=acr.base)
            put = requests.put(f"{base}/v1/backends/azure-ml", json={"config": config},
                               headers=operator.http_headers, timeout=30)
            assert put.status_code == 200, put.text
            host = base.removeprefix("http://")
            skopeo("copy", "--dest-tls-verify=false", "--dest-creds", f"acme:{member.plaintext}",
                   f"oci:{tmp_path / 'layout'}:v3", f"docker://{host}/acme/trainer:v3")

            body = {"name": "llama-sft", "backend": "azure-ml", "image": "localhost:8000/acme/trainer:v3",
                    "command": ["python", "train.py"], "args": ["--lr", "3e-4", "--note", "it's $HOME"],
                    "env": {"WANDB_PROJECT": "sft"},
                    "resources": {"machine_type": "Standard_NC24ads_A100_v4", "instance_count": 2},
                    "storage_mounts": [{"source": "azureml://datastores/corpus/paths/web", "mode": "ro"},
                                       {"source": "azureml://datastores/ckpt/paths/sft", "mode": "rw"}],
                    "max_runtime_seconds": 7200, "labels": {"team": "nlp"},
                    "backend_options": {"spot": True, "distribution": "pytorch", "processes_per_instance": 4}}
            created = requests.post(f"{base}/v1/jobs", json=body, headers=member.http_headers, timeout=30)
            assert created.status_code == 201, created.text
            job_id = created.json()["id"]
            assert created.json()["image_digest"] == built.digest

            wait_until(lambda: azure.creates, timeout=120, message="the command job to be created after the mirror")
            job = Job.objects.get(pk=job_id)
            reference = f"acmeimages.azurecr.io/train/acme/trainer@{built.digest}"
            assert job.cloud_image == reference
            assert pulled_digest(acr, "train/acme/trainer", built.digest) == built.digest

            sent = azure.creates[0]["properties"]
            request = build_request(job_spec(job), job.remote_name, job.backend_config)
            assert azure.creates == [request["job"]["body"]]
            assert azure.environments[request["environment"]["path"]]["properties"]["image"] == reference
            assert sent["command"] == ('export STORAGE_MOUNT_0_PATH="${{inputs.mount0}}"; '
                                       'export STORAGE_MOUNT_1_PATH="${{outputs.mount1}}"; '
                                       "exec python train.py --lr 3e-4 --note 'it'\"'\"'s $HOME'")
            assert sent["resources"] == {"instanceCount": 2, "instanceType": "Standard_NC24ads_A100_v4"}
            assert sent["distribution"] == {"distributionType": "PyTorch", "processCountPerInstance": 4}
            assert sent["queueSettings"] == {"jobTier": "Spot"}
            assert sent["limits"]["timeout"] == "PT7200S" and sent["environmentVariables"]["WANDB_PROJECT"] == "sft"
            assert sent["inputs"]["mount0"]["mode"] == "ReadOnlyMount"
            assert sent["outputs"]["mount1"]["mode"] == "ReadWriteMount"
            assert sent["tags"]["team"] == "nlp" and sent["properties"]["train_job_id"] == job_id

            # A tag in the account's own ACR is run by the digest it names when the job is submitted.
            tag_in_acr(acr, "train/acme/trainer", built.digest, "stable")
            tagged = requests.post(f"{base}/v1/jobs", json={**body, "name": "from-acr",
                                                            "image": "acmeimages.azurecr.io/train/acme/trainer:stable"},
                                   headers=member.http_headers, timeout=30)
            assert tagged.status_code == 201, tagged.text
            wait_until(lambda: len(azure.creates) == 2, timeout=60, message="the second job to be created")
            second = Job.objects.get(pk=tagged.json()["id"])
            assert (second.image, second.image_digest, second.cloud_image) == (
                "acmeimages.azurecr.io/train/acme/trainer:stable", built.digest, reference), "which digest ran"
            pinned = [env for env in azure.environments.values() if env["properties"]["image"] == reference]
            assert pinned and azure.creates[1]["properties"]["environmentId"] == request["environment"]["path"]

            azure.start(job.remote_name)
            azure.put_log(job.remote_name, "user_logs/std_log.txt", ["epoch 1", "epoch 2"])
            azure.complete(job.remote_name)

            def finished():
                shown = requests.get(f"{base}/v1/jobs/{job_id}", headers=member.http_headers, timeout=10).json()
                return shown if shown["status"] == "COMPLETED" else None

            done = wait_until(finished, timeout=60, message="the job to complete")
            logs = requests.get(f"{base}/v1/jobs/{job_id}/logs", headers=member.http_headers, timeout=30).json()
    assert done["sub_status"] == "Completed" and done["finished_at"] and done["started_at"]
    assert done["console_url"].startswith(f"https://ml.azure.com/runs/{job.remote_name}?wsid=")
    assert logs == {"lines": ["epoch 1", "epoch 2"]}
    assert len(azure.creates) == 2 and fake_cloud.calls[("azureml", "PutJob")] == 2
    assert azure.jobs_tagged(job_id) == [job.remote_name]
    assert JobEvent.objects.filter(job_id=job_id, to_status="COMPLETED").count() == 1
