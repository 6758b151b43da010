"""build_request: the CustomJob Train creates for each kind of job, pinned by golden files
(tests/backends/golden/vertex-ai_<case>.json; regenerate with UPDATE_GOLDEN=1), in Vertex's v1 REST
form: camelCase, enums by name, int64 as strings, durations as "<n>s"."""

import json
import os
from pathlib import Path

import pytest

from backends.base import JobSpec, Mount
from backends.gcp.vertex import VertexBackend, build_request

GOLDEN = Path(__file__).parent / "golden"
AR_IMAGE = "europe-west4-docker.pkg.dev/acme-ml/images/trainer"
DIGEST = "sha256:" + "ab" * 32
JOB_ID = "job_0123456789abcdef0123456789abcdef"
CONFIG = {
    "project": "acme-ml", "region": "europe-west4", "service_account": "trainer@acme-ml.iam.gserviceaccount.com",
    "impersonate_service_account": "train-access@acme-ml.iam.gserviceaccount.com",
    "base_output_uri": "gs://acme-models/train/",
    "artifact_registry_repository": "europe-west4-docker.pkg.dev/acme-ml/train-images", "mirror_on_push": False,
}


def spec(**changes) -> JobSpec:
    values = {"job_id": JOB_ID, "account_id": "acme", "name": "sft", "image": f"{AR_IMAGE}:v1",
              "command": ("python", "train.py"), "resources": {"machine_type": "g2-standard-12", "instance_count": 1},
              "max_runtime_seconds": 3600}
    values.update(changes)
    return JobSpec(**values)


CASES = {
    "minimal": (spec(), CONFIG),
    "full": (spec(
        args=("--epochs", "3"), env={"WANDB_PROJECT": "sft", "HF_HOME": "/tmp/hf"},
        resources={"machine_type": "a2-highgpu-2g", "accelerator_type": "NVIDIA_TESLA_A100", "accelerator_count": 2,
                   "instance_count": 1},
        storage_mounts=(Mount("gs://acme-data/corpus"), Mount("gs://acme-data/ckpt/run3/", "rw")),
        labels={"team": "nlp", "cost-center": "r-and-d"}, max_runtime_seconds=86400,
        backend_options={"boot_disk_size_gb": 200},
    ), {**CONFIG, "network": "projects/123456789012/global/networks/training"}),
    "distributed": (spec(resources={"machine_type": "a3-highgpu-8g", "accelerator_type": "NVIDIA_H100_80GB",
                                    "accelerator_count": 8, "instance_count": 4}), CONFIG),
    "digest_image": (spec(image=f"{AR_IMAGE}:v1@{DIGEST}"), CONFIG),
    # An image of Train's registry, mirrored: the job submits its Artifact Registry reference by digest.
    "mirrored_image": (spec(image=f"europe-west4-docker.pkg.dev/acme-ml/train-images/acme/trainer@{DIGEST}"), CONFIG),
    "spot": (spec(backend_options={"spot": True}), CONFIG),
    "flex_start": (spec(backend_options={"strategy": "FLEX_START", "max_wait_seconds": 7200},
                        resources={"machine_type": "a3-highgpu-1g", "accelerator_type": "NVIDIA_H100_80GB",
                                   "accelerator_count": 1}), CONFIG),
    "longest_runtime": (spec(max_runtime_seconds=7 * 24 * 3600, image="gcr.io/acme-ml/trainer:v2",
                             name="a" * 140), CONFIG),
}


@pytest.mark.parametrize("case", CASES)
def test_request_matches_golden_file(case):
    job, config = CASES[case]
    request = build_request(job, config)
    path = GOLDEN / f"vertex-ai_{case}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(request, indent=2, sort_keys=True) + "\n")
    assert request == json.loads(path.read_text())


def test_every_case_validates():
    backend = VertexBackend(CONFIG)
    for job, _config in CASES.values():
        backend.validate(job)


def test_the_wire_form_is_vertex_rest():
    request = build_request(CASES["distributed"][0], CONFIG)
    chief, workers = request["jobSpec"]["workerPoolSpecs"]
    assert chief["replicaCount"] == "1" and workers["replicaCount"] == "3"  # int64 as JSON strings
    assert chief["machineSpec"] == workers["machineSpec"] == {
        "machineType": "a3-highgpu-8g", "acceleratorType": "NVIDIA_H100_80GB", "acceleratorCount": 8}
    assert request["jobSpec"]["scheduling"] == {"timeout": "3600s"}
    assert request["labels"] == {"train-job-id": JOB_ID, "train-account": "acme"}


def test_a_pinned_image_drops_its_tag():
    request = build_request(CASES["digest_image"][0], CONFIG)
    assert request["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["imageUri"] == f"{AR_IMAGE}@{DIGEST}"


def test_mounts_are_visible_under_gcs():
    env = build_request(CASES["full"][0], CONFIG)["jobSpec"]["workerPoolSpecs"][0]["containerSpec"]["env"]
    assert {"name": "STORAGE_MOUNT_0_PATH", "value": "/gcs/acme-data/corpus"} in env
    assert {"name": "STORAGE_MOUNT_1_PATH", "value": "/gcs/acme-data/ckpt/run3"} in env
    assert env[-1] == {"name": "TRAIN_JOB_ID", "value": JOB_ID}
