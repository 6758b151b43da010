"""TRAIN_CLOUD_EMULATOR for the sagemaker backend: with the account's usual fields alone, every AWS call
(SageMaker, STS, CloudWatch Logs, the ECR API) goes to the emulator, with fixed dummy credentials of
Train's own; the credential chain is never consulted and endpoints an account configured are not used."""

import os

import pytest

from backends.aws.config import validate_config
from backends.aws.ecr import authorization
from backends.aws.sagemaker import SageMakerBackend
from backends.aws.session import aws_clients_clear
from backends.base import RemoteRef
from tests.backends.conftest import EXECUTION_ROLE, GATEWAY_ROLE, SEED
from tests.fakecloud import FakeCloud

USUAL = {"region": "eu-west-1", "execution_role_arn": EXECUTION_ROLE, "output_s3_uri": "s3://acme-models/train"}


@pytest.fixture
def emulator(fake_cloud, settings, monkeypatch):
    """The fake cloud as TRAIN_CLOUD_EMULATOR, and no AWS credentials anywhere in the environment."""
    for key in [key for key in os.environ if key.startswith("AWS_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
    monkeypatch.setenv("AWS_CONFIG_FILE", os.devnull)
    settings.TRAIN_CLOUD_EMULATOR = fake_cloud.url
    aws_clients_clear()
    yield fake_cloud
    aws_clients_clear()


def test_the_usual_fields_reach_the_emulator_with_the_external_id(emulator):
    config = validate_config({**USUAL, "assume_role_arn": GATEWAY_ROLE}, previous={})
    SageMakerBackend(config).poll([RemoteRef(name="train-x")])
    assert emulator.calls[("sagemaker", "DescribeTrainingJob")] == 1
    assumed = [call for call in emulator.forwarded if call.get("Action") == "AssumeRole"]
    assert [(c["RoleArn"], c["ExternalId"]) for c in assumed] == [(GATEWAY_ROLE, config["external_id"])]


def test_without_a_role_the_dummy_credentials_are_used(emulator):
    SageMakerBackend(validate_config(USUAL, previous={})).poll([RemoteRef(name="train-x")])
    assert emulator.calls[("sagemaker", "DescribeTrainingJob")] == 1


def test_configured_endpoints_are_not_called(emulator):
    with FakeCloud(seed=SEED) as elsewhere:
        elsewhere.fallback_url = emulator.fallback_url
        endpoints = {key: elsewhere.url for key in ("endpoint_url", "sts_endpoint_url", "logs_endpoint_url",
                                                   "ecr_endpoint_url")}
        config = validate_config({**USUAL, "assume_role_arn": GATEWAY_ROLE, **endpoints}, previous={})
        backend = SageMakerBackend(config)
        backend.poll([RemoteRef(name="train-x")])
        backend.logs(RemoteRef(name="train-x"))
        authorization(config)
    assert sum(elsewhere.calls.values()) == 0 and elsewhere.forwarded == []
    targets = {call["target"] for call in emulator.forwarded}
    assert {"Logs_20140328.DescribeLogStreams", "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken"} <= targets
