"""build_request: the CreateTrainingJob request for each kind of job, pinned by golden files
(tests/backends/golden/sagemaker_<case>.json; regenerate with UPDATE_GOLDEN=1) and checked against
botocore's API model, so a request SageMaker would reject cannot pass."""

import json
import os
from pathlib import Path

import pytest

from backends.aws.sagemaker import NAME_RE, SageMakerBackend, build_request
from backends.base import JobSpec, Mount

GOLDEN = Path(__file__).parent / "golden"
ECR_IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/acme/trainer"
DIGEST = "sha256:" + "ab" * 32
JOB_ID = "job_0123456789abcdef0123456789abcdef"
CONFIG = {
    "region": "eu-west-1", "execution_role_arn": "arn:aws:iam::123456789012:role/SageMakerExecution",
    "output_s3_uri": "s3://acme-models/train/", "external_id": "e" * 40,
}


def spec(**changes) -> JobSpec:
    values = {"job_id": JOB_ID, "account_id": "acme", "name": "sft", "image": f"{ECR_IMAGE}:v1",
              "command": ("python", "train.py"), "resources": {"machine_type": "ml.g5.xlarge", "instance_count": 1},
              "max_runtime_seconds": 3600}
    values.update(changes)
    return JobSpec(**values)


CASES = {
    "minimal": (spec(), CONFIG),
    "full": (spec(
        args=("--epochs", "3"), env={"WANDB_PROJECT": "sft", "HF_HOME": "/tmp/hf"},
        resources={"machine_type": "ml.p4d.24xlarge", "instance_count": 2},
        storage_mounts=(Mount("s3://acme-data/corpus"), Mount("s3://acme-data/ckpt/run3/", "rw"),
                        Mount("s3://acme-data/tokenizer/")),
        labels={"team": "nlp", "cost-center": "r-and-d"}, max_runtime_seconds=86400,
        backend_options={"volume_size_gb": 200, "input_mode": "File"},
    ), CONFIG),
    "digest_image": (spec(image=f"{ECR_IMAGE}:v1@{DIGEST}"), CONFIG),
    # An image of Train's registry, mirrored: the job submits its ECR reference by digest.
    "mirrored_image": (spec(image=f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/train/acme/trainer@{DIGEST}"),
                       CONFIG),
    "spot_with_config_checkpoint": (spec(
        backend_options={"spot": True}, storage_mounts=(Mount("s3://acme-data/corpus"),),
    ), {**CONFIG, "checkpoint_s3_uri": "s3://acme-checkpoints/train/"}),
    "longest_runtime": (spec(max_runtime_seconds=28 * 24 * 3600, backend_options={"spot": True,
                                                                               "max_wait_seconds": 3 * 24 * 3600 * 10}),
                        CONFIG),
}


@pytest.mark.parametrize("case", CASES)
def test_request_matches_golden_file(case):
    job, config = CASES[case]
    request = build_request(job, SageMakerBackend.remote_name(job.job_id), config)
    path = GOLDEN / f"sagemaker_{case}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(request, indent=2, sort_keys=True) + "\n")
    assert request == json.loads(path.read_text())


@pytest.mark.parametrize("case", CASES)
def test_request_is_valid_for_the_sagemaker_api_model(case):
    import botocore.session
    from botocore.validate import ParamValidator

    job, config = CASES[case]
    request = build_request(job, SageMakerBackend.remote_name(job.job_id), config)
    shape = botocore.session.get_session().get_service_model("sagemaker").operation_model("CreateTrainingJob")
    report = ParamValidator().validate(request, shape.input_shape)
    assert not report.has_errors(), report.generate_report()


def test_same_spec_gives_the_same_request():
    job, config = CASES["full"]
    assert build_request(job, "train-x", config) == build_request(job, "train-x", dict(config))


def test_mount_paths_follow_the_mount_index():
    job, config = CASES["full"]
    request = build_request(job, "train-x", config)
    env = request["Environment"]
    assert env["STORAGE_MOUNT_0_PATH"] == "/opt/ml/input/data/mount0"
    assert env["STORAGE_MOUNT_1_PATH"] == "/opt/ml/checkpoints"
    assert env["STORAGE_MOUNT_2_PATH"] == "/opt/ml/input/data/mount2"
    assert [c["ChannelName"] for c in request["InputDataConfig"]] == ["mount0", "mount2"]
    assert request["CheckpointConfig"]["S3Uri"] == "s3://acme-data/ckpt/run3/"
    assert all(c["DataSource"]["S3DataSource"]["S3Uri"].endswith("/") for c in request["InputDataConfig"])


def test_tags_carry_the_job_id_the_account_and_the_labels():
    job, config = CASES["full"]
    tags = {t["Key"]: t["Value"] for t in build_request(job, "train-x", config)["Tags"]}
    assert tags == {"train-job-id": JOB_ID, "train-account": "acme", "team": "nlp", "cost-center": "r-and-d"}


@pytest.mark.parametrize("job_id", [JOB_ID, "job_" + "f" * 32, "job_ABC_def", "x" * 80])
def test_training_job_name_is_derived_from_the_job_id(job_id):
    name = SageMakerBackend.remote_name(job_id)
    assert NAME_RE.match(name) and len(name) <= 63
    assert name == SageMakerBackend.remote_name(job_id)


def test_distinct_job_ids_give_distinct_names():
    assert SageMakerBackend.remote_name(JOB_ID) != SageMakerBackend.remote_name(JOB_ID[:-1] + "0")
