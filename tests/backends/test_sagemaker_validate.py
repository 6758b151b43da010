"""What SageMaker cannot run is refused at submission, naming the field to fix."""

import pytest

from backends.aws.sagemaker import SageMakerBackend
from backends.base import Mount, SpecError
from tests.backends.test_sagemaker_request import CONFIG, ECR_IMAGE, spec


def errors_for(**changes) -> dict:
    with pytest.raises(SpecError) as caught:
        SageMakerBackend(CONFIG).validate(spec(**changes))
    return caught.value.errors


def test_a_valid_spec_passes():
    SageMakerBackend(CONFIG).validate(spec(
        storage_mounts=(Mount("s3://bkt/data"), Mount("s3://bkt/ckpt", "rw")), env={"A": "1"}, labels={"team": "x"},
        backend_options={"spot": True, "max_wait_seconds": 7200, "volume_size_gb": 100, "input_mode": "File"}))


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"storage_mounts": (Mount("gs://b/data"),)}, "storage_mounts[0].source", "s3://"),
    ({"storage_mounts": (Mount("s3://B_ad/x"),)}, "storage_mounts[0].source", "s3://bucket/prefix"),
    ({"storage_mounts": (Mount("s3://bkt/a/../c"),)}, "storage_mounts[0].source", "normalised"),
    ({"storage_mounts": tuple(Mount(f"s3://bkt/{i}") for i in range(21))}, "storage_mounts", "at most 20"),
    ({"storage_mounts": (Mount("s3://bkt/1", "rw"), Mount("s3://bkt/2", "rw"))}, "storage_mounts[1].mode", "one"),
    ({"env": {"SM_MODEL_DIR": "/x"}}, "env.SM_MODEL_DIR", "SageMaker sets"),
    ({"env": {"TRAINING_JOB_NAME": "x"}}, "env.TRAINING_JOB_NAME", "SageMaker sets"),
    ({"env": {"BIG": "x" * 513}}, "env.BIG", "512"),
    ({"env": {f"V{i}": "x" for i in range(100)}}, "env", "at most 100"),
    ({"command": tuple("x" for _ in range(101))}, "command", "at most 100"),
    ({"args": ("--data", "y" * 257)}, "args[1]", "256"),
    ({"labels": {"train-job-id": "x"}}, "labels.train-job-id", "Train's own"),
    ({"labels": {f"k{i}": "v" for i in range(49)}}, "labels", "at most 48"),
    ({"resources": {"instance_count": 1}}, "resources.machine_type", "Required"),
    ({"resources": {"machine_type": "n1-standard-4"}}, "resources.machine_type", "ml."),
    ({"resources": {"machine_type": "ml.g5.xlarge", "accelerator_type": "A10G", "accelerator_count": 1}},
     "resources.accelerator_type", "come with their accelerators"),
    ({"max_runtime_seconds": 28 * 24 * 3600 + 1}, "max_runtime_seconds", "at most"),
    ({"backend_options": {"gpus": 2}}, "backend_options.gpus", "Unknown option"),
    ({"backend_options": {"input_mode": "Pipe"}}, "backend_options.input_mode", "FastFile"),
    ({"backend_options": {"volume_size_gb": 0}}, "backend_options.volume_size_gb", "1 to"),
    ({"backend_options": {"spot": "yes"}}, "backend_options.spot", "true or false"),
    ({"backend_options": {"max_wait_seconds": 7200}}, "backend_options.max_wait_seconds", "spot"),
    ({"backend_options": {"spot": True, "max_wait_seconds": 60}}, "backend_options.max_wait_seconds",
     "max_runtime_seconds"),
])
def test_invalid_spec_is_refused_naming_the_field(changes, field, words):
    errors = errors_for(**changes)
    assert field in errors, errors
    assert words in " ".join(errors[field])


@pytest.mark.parametrize("image", [
    f"{ECR_IMAGE}:v1", f"{ECR_IMAGE}@sha256:{'0' * 64}", f"{ECR_IMAGE}:v1@sha256:{'0' * 64}", ECR_IMAGE,
])
def test_ecr_images_in_the_jobs_region_pass(image):
    SageMakerBackend(CONFIG).validate(spec(image=image))


@pytest.mark.parametrize("image", [
    "train.example.com/acme/trainer:v1", f"train.example.com/acme/trainer@sha256:{'0' * 64}",
    "train.example.com/acme/team.a/trainer-x_1:v1",
])
def test_images_in_trains_registry_pass_because_they_are_mirrored_to_ecr(settings, image):
    settings.TRAIN_REGISTRY_HOST = "train.example.com"
    SageMakerBackend(CONFIG).validate(spec(image=image))


@pytest.mark.parametrize(("image", "words"), [
    # Train's names allow separators ECR refuses: the job is refused now, not after the copy.
    ("train.example.com/acme/a__b:v1", "ECR cannot hold a repository named 'train/acme/a__b'"),
    ("train.example.com/acme/a--b:v1", "ECR cannot hold"),
    ("train.example.com/acme/" + "/".join(["x" * 30] * 5) + ":v1", "SageMaker accepts at most 255"),
])
def test_train_images_ecr_cannot_hold_are_refused_naming_image(settings, image, words):
    settings.TRAIN_REGISTRY_HOST = "train.example.com"
    assert words in errors_for(image=image)["image"][0]


def test_the_configured_prefix_names_the_ecr_repository(settings):
    settings.TRAIN_REGISTRY_HOST = "train.example.com"
    with pytest.raises(SpecError) as caught:
        SageMakerBackend({**CONFIG, "ecr_repository_prefix": "ml/mirrors"}).validate(
            spec(image="train.example.com/acme/a__b:v1"))
    assert "'ml/mirrors/acme/a__b'" in caught.value.errors["image"][0]


@pytest.mark.parametrize(("image", "words"), [
    ("python:3.11", "Docker Hub is neither"),
    ("docker.io/library/python:3.11", "docker.io is neither"),
    ("ghcr.io/acme/trainer:v1", "ECR or from Train's registry"),
    ("123456789012.dkr.ecr.us-east-1.amazonaws.com/acme/trainer:v1", "us-east-1"),
])
def test_other_registries_are_refused_naming_image(image, words):
    assert words in errors_for(image=image)["image"][0]


def test_every_problem_is_reported_at_once():
    errors = errors_for(image="python:3.11", env={"SM_X": "1"}, resources={})
    assert {"image", "env.SM_X", "resources.machine_type"} <= set(errors)
