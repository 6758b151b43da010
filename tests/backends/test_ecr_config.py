"""Mirroring settings of the sagemaker configuration (ECR repository prefix, registry endpoint, ECR API
endpoint, repository options, mirror_on_push): validated on PUT with a 400 naming the setting, shown on
GET with their defaults; and what POST /v1/jobs now accepts as a SageMaker image."""

import pytest

from backends.models import BackendConfig
from tests.backends.conftest import EXECUTION_ROLE
from tests.registry.conftest import V2

pytestmark = pytest.mark.django_db

VALID = {"region": "eu-west-1", "execution_role_arn": EXECUTION_ROLE, "output_s3_uri": "s3://acme-models/train"}
HOST = "localhost:5999"


def put(api, caller, config):
    return api.put("/v1/backends/sagemaker", {"config": config}, format="json", **caller.headers)


def test_defaults_are_shown(api, operator):
    assert put(api, operator, VALID).status_code == 200
    shown = api.get("/v1/backends/sagemaker", **operator.headers).json()["config"]
    assert shown["ecr_repository_prefix"] == "train"
    assert (shown["ecr_tag_immutability"], shown["ecr_scan_on_push"], shown["mirror_on_push"]) == (False, False, False)
    assert "registry_endpoint" not in shown


def test_mirroring_settings_are_kept_in_canonical_form(api, operator):
    response = put(api, operator, {**VALID, "ecr_repository_prefix": "ml/mirrors", "ecr_tag_immutability": True,
                                   "ecr_scan_on_push": True, "mirror_on_push": True,
                                   "registry_endpoint": "https://123456789012.DKR.ecr.eu-west-1.amazonaws.com/",
                                   "ecr_endpoint_url": "https://api.ecr.eu-west-1.amazonaws.com"})
    assert response.status_code == 200, response.content
    shown = api.get("/v1/backends/sagemaker", **operator.headers).json()["config"]
    assert shown["registry_endpoint"] == "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"
    assert shown["ecr_endpoint_url"] == "https://api.ecr.eu-west-1.amazonaws.com"
    assert shown["ecr_repository_prefix"] == "ml/mirrors"
    assert (shown["ecr_tag_immutability"], shown["ecr_scan_on_push"], shown["mirror_on_push"]) == (True, True, True)


@pytest.mark.parametrize(("changes", "field"), [
    ({"ecr_repository_prefix": "Train"}, "config.ecr_repository_prefix"),
    ({"ecr_repository_prefix": "a__b"}, "config.ecr_repository_prefix"),
    ({"ecr_repository_prefix": "train/"}, "config.ecr_repository_prefix"),
    ({"ecr_repository_prefix": "-train"}, "config.ecr_repository_prefix"),
    ({"ecr_repository_prefix": "x" * 65}, "config.ecr_repository_prefix"),
    ({"ecr_repository_prefix": "tr\x00ain"}, "config.ecr_repository_prefix"),
    ({"ecr_repository_prefix": 7}, "config.ecr_repository_prefix"),
    ({"registry_endpoint": "https://127.0.0.1:1\\@x.amazonaws.com"}, "config.registry_endpoint"),
    ({"registry_endpoint": "https://x.amazonaws.com@127.0.0.1:1"}, "config.registry_endpoint"),
    ({"registry_endpoint": "http://10.0.0.5:5000"}, "config.registry_endpoint"),
    ({"registry_endpoint": "https://registry.example.com"}, "config.registry_endpoint"),
    ({"registry_endpoint": "http://123456789012.dkr.ecr.eu-west-1.amazonaws.com"}, "config.registry_endpoint"),
    ({"registry_endpoint": "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com/v2/"}, "config.registry_endpoint"),
    ({"ecr_endpoint_url": "https://127.0.0.1:1\\@api.ecr.eu-west-1.amazonaws.com"}, "config.ecr_endpoint_url"),
    ({"ecr_endpoint_url": "http://169.254.169.254"}, "config.ecr_endpoint_url"),
    ({"ecr_tag_immutability": "yes"}, "config.ecr_tag_immutability"),
    ({"ecr_scan_on_push": "false"}, "config.ecr_scan_on_push"),
    ({"mirror_on_push": None}, "config.mirror_on_push"),
    ({"mirror_on_push": 1}, "config.mirror_on_push"),
])
def test_invalid_mirroring_settings_are_400_naming_the_setting(api, operator, changes, field):
    response = put(api, operator, {**VALID, **changes})
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not BackendConfig.objects.filter(backend="sagemaker").exists()


def test_loopback_registry_endpoints_are_refused_where_the_deployment_does_not_allow_them(api, operator, settings):
    assert put(api, operator, {**VALID, "registry_endpoint": "http://127.0.0.1:5000"}).status_code == 200
    settings.TRAIN_AWS_REGISTRY_HOSTS = [".amazonaws.com"]
    response = put(api, operator, {**VALID, "registry_endpoint": "http://127.0.0.1:5000"})
    assert response.status_code == 400
    assert "config.registry_endpoint" in response.json()


@pytest.fixture
def sagemaker_configured(api, operator, settings):
    settings.TRAIN_REGISTRY_HOST = HOST
    assert put(api, operator, VALID).status_code == 200


def submit(api, caller, image):
    body = {"name": "sft", "backend": "sagemaker", "image": image, "command": ["python", "train.py"],
            "resources": {"machine_type": "ml.g5.xlarge"}}
    return api.post("/v1/jobs", body, format="json", **caller.headers)


def test_a_train_image_is_accepted_for_sagemaker(api, operator, member, sagemaker_configured):
    digest, _ = V2(operator).push_image("acme/trainer", "v3")
    response = submit(api, member, f"{HOST}/acme/trainer:v3")
    assert response.status_code == 201, response.content
    assert response.json()["image_digest"] == digest


@pytest.mark.parametrize(("image", "words"), [
    ("python:3.11", "Docker Hub is neither"),
    ("ghcr.io/acme/trainer:v1", "ghcr.io is neither"),
])
def test_other_registries_are_still_400_naming_image(api, member, sagemaker_configured, image, words):
    response = submit(api, member, image)
    assert response.status_code == 400
    assert words in str(response.json()["image"])
