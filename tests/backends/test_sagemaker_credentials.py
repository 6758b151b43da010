"""Credentials: Train's own chain, exchanged through STS AssumeRole with the account's ExternalId when
a role is configured, refreshed before expiry; nothing secret in the database."""

import pytest

from backends.aws import session
from backends.aws.sagemaker import SageMakerBackend
from backends.base import RemoteRef
from backends.models import BackendConfig
from tests.backends.conftest import SEED
from tests.fakecloud import FakeCloud


def assume_role_calls(fake_cloud) -> list[dict]:
    return [call for call in fake_cloud.forwarded if call.get("Action") == "AssumeRole"]


def test_the_configured_role_is_assumed_with_the_accounts_external_id(sagemaker_config, fake_cloud):
    SageMakerBackend(sagemaker_config).poll([RemoteRef(name="train-x")])
    calls = assume_role_calls(fake_cloud)
    assert len(calls) == 1
    assert calls[0]["RoleArn"] == sagemaker_config["assume_role_arn"]
    assert calls[0]["ExternalId"] == sagemaker_config["external_id"]


def test_credentials_are_reused_until_they_near_expiry(sagemaker_config, fake_cloud):
    backend = SageMakerBackend(sagemaker_config)
    for _ in range(3):
        backend.poll([RemoteRef(name="train-x")])
    assert len(assume_role_calls(fake_cloud)) == 1


def test_credentials_close_to_expiry_are_refreshed(sagemaker_config, fake_cloud, monkeypatch):
    # 15-minute sessions are inside botocore's refresh window from the start: every use refreshes.
    monkeypatch.setattr(session, "ASSUME_ROLE_SECONDS", 900)
    backend = SageMakerBackend(sagemaker_config)
    backend.poll([RemoteRef(name="train-x")])
    backend.poll([RemoteRef(name="train-y")])
    assert len(assume_role_calls(fake_cloud)) >= 2


def test_without_a_role_trains_own_credentials_are_used(sagemaker_config, fake_cloud):
    config = {key: value for key, value in sagemaker_config.items() if key != "assume_role_arn"}
    SageMakerBackend(config).poll([RemoteRef(name="train-x")])
    assert assume_role_calls(fake_cloud) == []
    assert fake_cloud.calls[("sagemaker", "DescribeTrainingJob")] == 1


def test_assume_role_goes_to_the_sts_endpoint_not_the_sagemaker_one(sagemaker_config, fake_cloud, moto_url):
    # Behind a SageMaker VPC endpoint, STS is another endpoint: AssumeRole must never be sent to SageMaker's.
    with FakeCloud(seed=SEED) as sts:
        sts.fallback_url = moto_url
        SageMakerBackend({**sagemaker_config, "sts_endpoint_url": sts.url}).poll([RemoteRef(name="train-x")])
    assert assume_role_calls(fake_cloud) == []
    assert len(assume_role_calls(sts)) == 1
    assert fake_cloud.calls[("sagemaker", "DescribeTrainingJob")] == 1


@pytest.mark.django_db
def test_no_aws_secret_is_stored(sagemaker_account):
    stored = BackendConfig.objects.get(account=sagemaker_account, backend="sagemaker").config
    assert set(stored) <= {"region", "execution_role_arn", "output_s3_uri", "checkpoint_s3_uri",
                           "assume_role_arn", "endpoint_url", "sts_endpoint_url", "logs_endpoint_url", "external_id",
                           "ecr_endpoint_url", "registry_endpoint", "ecr_repository_prefix", "ecr_tag_immutability",
                           "ecr_scan_on_push", "mirror_on_push"}
