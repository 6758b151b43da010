"""The sagemaker backend's mirror target: an image pushed to Train is copied into the account's ECR
registry with GetAuthorizationToken's login, into `<prefix>/<repository>`, created once with the
account's settings; a login whose expiresAt has passed is fetched again, never reused.

ECR's API is moto (server mode) or, where moto cannot answer what a case needs, a small fake at the
HTTP layer (tests/backends/ecr_fake.py). ECR's registry is Debian's Distribution with htpasswd
`AWS:<the password GetAuthorizationToken returns>`, reached through `registry_endpoint`."""

import subprocess
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from backends.aws.config import validate_config
from backends.aws.ecr import authorization
from backends.aws.sagemaker import SageMakerBackend
from backends.aws.session import aws_clients
from backends.base import BackendError
from registry.mirror import mirror_ensure, mirror_run
from registry.models import MirrorState, Repository
from tests.backends.conftest import EXECUTION_ROLE, GATEWAY_ROLE
from tests.backends.ecr_fake import fake_ecr
from tests.conftest import require_tool
from tests.registry.conftest import OCI_INDEX, OCI_MANIFEST, V2
from tests.support.distribution import basic_header, distribution, fetch

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ECR_HOST = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
FAKE_PASSWORD = "fake-ecr-password"


def config_for(**settings) -> dict:
    return validate_config({"region": "eu-west-1", "execution_role_arn": EXECUTION_ROLE,
                            "output_s3_uri": "s3://acme-models/train", **settings}, previous={})


@pytest.fixture
def prefix() -> str:
    # One moto server serves every test of the run: a prefix of its own keeps each test's repositories apart.
    return f"train-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def moto_config(moto_url, prefix) -> dict:
    """Assumes the account's role through moto's STS, and asks moto's ECR for logins."""
    return config_for(assume_role_arn=GATEWAY_ROLE, sts_endpoint_url=moto_url, ecr_endpoint_url=moto_url,
                      ecr_repository_prefix=prefix, ecr_tag_immutability=True, ecr_scan_on_push=True)


@pytest.fixture
def moto_password(moto_config) -> str:
    return authorization(moto_config).credentials.password


@pytest.fixture
def ecr_registry(tmp_path, moto_password):
    """Distribution standing in for the ECR registry: it accepts exactly moto's ECR login."""
    with distribution(tmp_path / "ecr", users={"AWS": moto_password}) as base:
        yield base


@pytest.fixture
def pushed(operator):
    digest, _document = V2(operator).push_image("acme/trainer", "v3", seed="ecr")
    return Repository.objects.get(name="acme/trainer"), digest


def manifest_at(base: str, repository: str, digest: str, password: str):
    return fetch(base, f"/v2/{repository}/manifests/{digest}", headers={
        **basic_header("AWS", password), "Accept": f"{OCI_MANIFEST}, {OCI_INDEX}"})


def test_an_image_pushed_to_train_arrives_in_ecr_by_digest(moto_config, moto_password, ecr_registry, pushed, prefix):
    repository, digest = pushed
    config = {**moto_config, "registry_endpoint": ecr_registry}
    target = SageMakerBackend(config).mirror_target("acme/trainer")
    assert target.label == "ECR"
    assert target.reference(digest) == f"{ECR_HOST}/{prefix}/acme/trainer@{digest}"
    mirror = mirror_run(mirror_id=mirror_ensure(repository=repository, digest=digest, target=target).pk, target=target)
    assert mirror.state == MirrorState.DONE, mirror.error
    assert (mirror.target_registry, mirror.target_repository) == (ECR_HOST, f"{prefix}/acme/trainer")
    answer = manifest_at(ecr_registry, f"{prefix}/acme/trainer", digest, moto_password)
    assert answer.status_code == 200, answer.text
    assert answer.headers["Docker-Content-Digest"] == digest
    skopeo = require_tool("skopeo")
    inspected = subprocess.run(
        [skopeo, "inspect", "--raw", "--tls-verify=false", "--creds", f"AWS:{moto_password}",
         f"docker://{ecr_registry.removeprefix('http://')}/{prefix}/acme/trainer@{digest}"],
        capture_output=True, text=True, timeout=120)
    assert inspected.returncode == 0, inspected.stderr
    assert inspected.stdout.encode() == answer.content


def test_the_stand_in_refuses_any_other_password(ecr_registry):
    # So the copy above proves that the target's credentials are the ones ECR issued.
    answer = manifest_at(ecr_registry, "train/acme/trainer", "sha256:" + "0" * 64, "not-the-token")
    assert answer.status_code == 401


def test_the_repository_is_created_once_with_the_accounts_settings(moto_config, prefix):
    target = SageMakerBackend(moto_config).mirror_target("acme/trainer")
    target.ensure_repository()
    target.ensure_repository()  # already there: fine, and left as it is
    described = aws_clients(moto_config).ecr.describe_repositories(repositoryNames=[f"{prefix}/acme/trainer"])
    [created] = described["repositories"]
    assert created["imageTagMutability"] == "IMMUTABLE"
    assert created["imageScanningConfiguration"] == {"scanOnPush": True}
    listed = aws_clients(moto_config).ecr.describe_repositories()["repositories"]
    assert [r["repositoryName"] for r in listed if r["repositoryName"].startswith(prefix)] == [f"{prefix}/acme/trainer"]


def test_defaults_create_a_mutable_repository_without_scanning(moto_url, prefix):
    config = config_for(ecr_endpoint_url=moto_url, ecr_repository_prefix=prefix)
    SageMakerBackend(config).mirror_target("acme/trainer").ensure_repository()
    [created] = aws_clients(config).ecr.describe_repositories(
        repositoryNames=[f"{prefix}/acme/trainer"])["repositories"]
    assert created["imageTagMutability"] == "MUTABLE"
    assert created["imageScanningConfiguration"] == {"scanOnPush": False}


def test_motos_expired_login_is_fetched_again_for_every_use(moto_config):
    # moto's GetAuthorizationToken says expiresAt 2015-01-01: every login is already expired, so the
    # registry client must ask for a new one each time it needs credentials (the copy above still works).
    client = SageMakerBackend(moto_config).mirror_target("acme/trainer").client()
    first = client.credentials()
    assert first.expired()
    assert client.credentials() is not first


@pytest.fixture
def ecr_api():
    """The fake ECR API with a login valid for 12 hours (as ECR's are)."""
    with fake_ecr(password=FAKE_PASSWORD, expires_at=datetime.now(UTC) + timedelta(hours=12),
                  proxy_endpoint=f"https://{ECR_HOST}") as (fake, url):
        yield fake, url


@pytest.fixture
def fake_registry(tmp_path):
    with distribution(tmp_path / "ecr", users={"AWS": FAKE_PASSWORD}) as base:
        yield base


def test_a_fresh_login_is_used_for_the_whole_copy(ecr_api, fake_registry, pushed):
    fake, url = ecr_api
    repository, digest = pushed
    target = SageMakerBackend(config_for(ecr_endpoint_url=url, registry_endpoint=fake_registry)).mirror_target(
        "acme/trainer")
    mirror = mirror_run(mirror_id=mirror_ensure(repository=repository, digest=digest, target=target).pk, target=target)
    assert mirror.state == MirrorState.DONE, mirror.error
    assert fake.calls["GetAuthorizationToken"] == 1  # building the target; its login served every request
    assert fake.calls["CreateRepository"] == 1
    assert manifest_at(fake_registry, "train/acme/trainer", digest, FAKE_PASSWORD).status_code == 200


@pytest.mark.parametrize("expires_in", [timedelta(minutes=-1), timedelta(minutes=2)])
def test_an_expired_login_is_fetched_again_not_reused(ecr_api, fake_registry, pushed, expires_in):
    # Two minutes left counts as expired: a request must not start on a login about to lapse.
    fake, url = ecr_api
    fake.expires_at = datetime.now(UTC) + expires_in
    repository, digest = pushed
    target = SageMakerBackend(config_for(ecr_endpoint_url=url, registry_endpoint=fake_registry)).mirror_target(
        "acme/trainer")
    client = target.client()
    client.credentials()
    client.credentials()
    assert fake.calls["GetAuthorizationToken"] == 3  # the target's, then one per use: none reused
    mirror = mirror_run(mirror_id=mirror_ensure(repository=repository, digest=digest, target=target).pk, target=target)
    assert mirror.state == MirrorState.DONE, mirror.error
    assert fake.calls["GetAuthorizationToken"] > 3


def test_a_refused_login_is_a_permanent_backend_error(ecr_api):
    fake, url = ecr_api
    fake.refuse["GetAuthorizationToken"] = "AccessDeniedException"
    with pytest.raises(BackendError) as caught:
        SageMakerBackend(config_for(ecr_endpoint_url=url)).mirror_target("acme/trainer")
    assert caught.value.permanent
    assert "AccessDeniedException" in caught.value.message


def test_a_refused_create_fails_the_mirror_permanently(ecr_api, fake_registry, pushed):
    fake, url = ecr_api
    fake.refuse["CreateRepository"] = "AccessDeniedException"
    repository, digest = pushed
    target = SageMakerBackend(config_for(ecr_endpoint_url=url, registry_endpoint=fake_registry)).mirror_target(
        "acme/trainer")
    mirror = mirror_run(mirror_id=mirror_ensure(repository=repository, digest=digest, target=target).pk, target=target)
    assert mirror.state == MirrorState.FAILED
    assert "AccessDeniedException" in mirror.error and "train/acme/trainer" in mirror.error


@pytest.mark.parametrize("proxy_endpoint", [
    "https://169.254.169.254", "http://123456789012.dkr.ecr.eu-west-1.amazonaws.com",
    "https://123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.example",
])
def test_a_login_for_a_host_that_is_not_ecr_is_refused(ecr_api, proxy_endpoint):
    # Train would send the login there: only an ECR registry host qualifies.
    fake, url = ecr_api
    fake.proxy_endpoint = proxy_endpoint
    with pytest.raises(BackendError) as caught:
        SageMakerBackend(config_for(ecr_endpoint_url=url)).mirror_target("acme/trainer")
    assert caught.value.permanent


def test_a_stored_registry_endpoint_no_longer_allowed_is_not_called(ecr_api, settings):
    _fake, url = ecr_api
    config = config_for(ecr_endpoint_url=url, registry_endpoint="http://127.0.0.1:5000")
    settings.TRAIN_AWS_REGISTRY_HOSTS = [".amazonaws.com"]
    with pytest.raises(BackendError) as caught:
        SageMakerBackend(config).mirror_target("acme/trainer")
    assert "registry_endpoint" in caught.value.message and caught.value.permanent


def test_a_repository_name_ecr_refuses_is_a_permanent_error(ecr_api):
    _fake, url = ecr_api
    with pytest.raises(BackendError) as caught:
        SageMakerBackend(config_for(ecr_endpoint_url=url)).mirror_target("acme/a__b")
    assert "ECR cannot hold" in caught.value.message and caught.value.permanent
