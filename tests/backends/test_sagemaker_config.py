"""Configuring SageMaker for an account: validated on PUT, shown on GET, an ExternalId that Train
generates and keeps, and no way to store an AWS secret."""

import re

import pytest

from backends.models import BackendConfig
from tests.backends.conftest import EXECUTION_ROLE, GATEWAY_ROLE

pytestmark = pytest.mark.django_db

VALID = {"region": "eu-west-1", "execution_role_arn": EXECUTION_ROLE, "output_s3_uri": "s3://acme-models/train"}


def put(api, caller, config):
    return api.put("/v1/backends/sagemaker", {"config": config}, format="json", **caller.headers)


def test_admin_configures_sagemaker_and_gets_an_external_id(api, operator):
    response = put(api, operator, {**VALID, "assume_role_arn": GATEWAY_ROLE})
    assert response.status_code == 200, response.content
    config = response.json()["config"]
    assert re.fullmatch(r"[0-9a-f]{40}", config["external_id"])
    assert config["output_s3_uri"] == "s3://acme-models/train/"
    assert response.json()["configured"] is True
    shown = api.get("/v1/backends/sagemaker", **operator.headers).json()
    assert shown["config"] == config


def test_only_account_admins_see_the_external_id(api, operator, member):
    put(api, operator, {**VALID, "assume_role_arn": GATEWAY_ROLE})
    shown = api.get("/v1/backends/sagemaker", **member.headers).json()["config"]
    assert "external_id" not in shown
    assert shown["region"] == "eu-west-1"
    listed = {b["name"]: b for b in api.get("/v1/backends", **member.headers).json()}
    assert "external_id" not in listed["sagemaker"]["config"]


def test_external_id_survives_updates_and_cannot_be_chosen(api, operator):
    first = put(api, operator, VALID).json()["config"]["external_id"]
    again = put(api, operator, {**VALID, "assume_role_arn": GATEWAY_ROLE}).json()["config"]
    assert again["external_id"] == first
    echoed = put(api, operator, {**VALID, "external_id": first})
    assert echoed.status_code == 200
    chosen = put(api, operator, {**VALID, "external_id": "my-own-id"})
    assert chosen.status_code == 400
    assert "config.external_id" in chosen.json()
    assert BackendConfig.objects.get(backend="sagemaker").config["external_id"] == first


def test_each_account_gets_its_own_external_id(api, operator, outsider):
    ours = put(api, operator, VALID).json()["config"]["external_id"]
    theirs = put(api, outsider, VALID).json()["config"]["external_id"]
    assert ours != theirs


@pytest.mark.parametrize(("changes", "field"), [
    ({"region": None}, "config.region"),
    ({"region": "Europe"}, "config.region"),
    ({"execution_role_arn": "arn:aws:iam::123:role/x"}, "config.execution_role_arn"),
    ({"output_s3_uri": "gs://bucket/x"}, "config.output_s3_uri"),
    ({"checkpoint_s3_uri": "s3://UPPER/x"}, "config.checkpoint_s3_uri"),
    ({"assume_role_arn": "TrainGateway"}, "config.assume_role_arn"),
    ({"aws_secret_access_key": "abc"}, "config.aws_secret_access_key"),
    ({"endpoint_url": "http://10.0.0.5:9000"}, "config.endpoint_url"),
    ({"endpoint_url": "https://sagemaker.example.com"}, "config.endpoint_url"),
    ({"endpoint_url": "https://api.sagemaker.eu-west-1.amazonaws.com/some/path"}, "config.endpoint_url"),
])
def test_invalid_configuration_is_400_naming_the_setting(api, operator, changes, field):
    config = {key: value for key, value in {**VALID, **changes}.items() if value is not None}
    response = put(api, operator, config)
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not BackendConfig.objects.filter(backend="sagemaker").exists()


@pytest.mark.parametrize(("field", "url"), [
    ("endpoint_url", "https://vpce-0a1b.api.sagemaker.eu-west-1.vpce.amazonaws.com"),
    ("sts_endpoint_url", "https://vpce-0a1b.sts.eu-west-1.vpce.amazonaws.com"),
    ("logs_endpoint_url", "https://logs.eu-west-1.amazonaws.com"),
])
def test_aws_hosts_are_allowed_as_endpoints(api, operator, field, url):
    response = put(api, operator, {**VALID, field: url})
    assert response.status_code == 200, response.content
    assert response.json()["config"][field] == url


def test_the_backslash_userinfo_endpoint_is_400(api, operator):
    response = put(api, operator, {**VALID, "endpoint_url": "https://127.0.0.1:18351\\@api.sagemaker.eu-west-1.amazonaws.com"})
    assert response.status_code == 400
    assert "config.endpoint_url" in response.json()


def test_loopback_endpoints_are_refused_where_the_deployment_does_not_allow_them(api, operator, settings):
    settings.TRAIN_AWS_ENDPOINT_HOSTS = [".amazonaws.com"]
    response = put(api, operator, {**VALID, "endpoint_url": "http://127.0.0.1:4566"})
    assert response.status_code == 400
    assert "config.endpoint_url" in response.json()


def test_members_cannot_configure(api, member):
    assert put(api, member, VALID).status_code == 403


def test_job_for_an_unconfigured_backend_is_400_naming_backend(api, member):
    body = {"name": "sft", "backend": "sagemaker", "command": ["python", "train.py"],
            "image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/acme/trainer:v1",
            "resources": {"machine_type": "ml.g5.xlarge"}}
    response = api.post("/v1/jobs", body, format="json", **member.headers)
    assert response.status_code == 400
    assert "PUT /v1/backends/sagemaker" in response.json()["backend"][0]
