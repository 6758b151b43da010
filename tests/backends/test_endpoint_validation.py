"""Endpoint URLs: refused unless the host both URL parsers see is one the deployment allows, and
each AWS service is called on its own endpoint."""

import socket
import threading

import pytest

from backends.aws.sagemaker import SageMakerBackend
from backends.aws.session import AwsTarget
from backends.base import BackendError, RemoteRef
from backends.common.endpoints import EndpointError, checked_endpoint_url
from backends.models import BackendConfig
from tests.backends.conftest import EXECUTION_ROLE, GATEWAY_ROLE, SEED
from tests.fakecloud import FakeCloud

VALID = {"region": "eu-west-1", "execution_role_arn": EXECUTION_ROLE, "output_s3_uri": "s3://acme-models/train"}
# What a production deployment allows by default: no loopback.
PRODUCTION_HOSTS = [".amazonaws.com", ".amazonaws.com.cn", ".api.aws"]
SSRF = "https://127.0.0.1:18351\\@api.sagemaker.eu-west-1.amazonaws.com"

EVIL_URLS = [
    SSRF,
    "https://127.0.0.1:18351@api.sagemaker.eu-west-1.amazonaws.com",  # userinfo
    "https://api.sagemaker.eu-west-1.amazonaws.com@127.0.0.1",  # userinfo, the other way round
    "https://user:pw@api.sagemaker.eu-west-1.amazonaws.com",
    "https://127.0.0.1\\.amazonaws.com",  # backslash
    "https://api.sagemaker\t.eu-west-1.amazonaws.com",  # tab (urlsplit strips it)
    "https://api.sagemaker.eu-west-1.amazonaws.com\n",
    "https://127.0.0.1%2eamazonaws.com",  # percent-encoding (urllib3 decodes it in hosts)
    "https://x%2e%2e.amazonaws.com",
    "https://127.0.0.1.nip.io",  # resolves to loopback, not an allowed host
    "https://api.sagemaker.eu-west-1.amazonaws.com.evil.example",
    "https://evilamazonaws.com",
    "https://[::1]:443",  # IPv6 loopback
    "https://[::ffff:127.0.0.1]",
    "https://[::1%25lo]",
    "https://0x7f.0.0.1",  # numeric forms resolvers read as 127.0.0.1
    "https://2130706433",
    "https://127.1",
    "https://api.sagemaker.eu-west-1.amazonaws.com#@127.0.0.1",
    "https://api.sagemaker.eu-west-1.amazonaws.com?@127.0.0.1",
    "https://api.sagemaker.eu-west-1.amazonaws.com/path",
    "https://api.sagemaker.eu-west-1.amazonaws.com:0",
    "https://api.sagemaker.eu-west-1.amazonaws.com:99999",
    "https://\uff41pi.sagemaker.eu-west-1.amazonaws.com",  # fullwidth letter (NFKC)
    "https://api.sagemaker\u3002eu-west-1.amazonaws.com",  # ideographic full stop
    "http://api.sagemaker.eu-west-1.amazonaws.com",  # plain http off loopback
    "ftp://api.sagemaker.eu-west-1.amazonaws.com",
    "https://",
    "//api.sagemaker.eu-west-1.amazonaws.com",
]


def put(api, caller, config):
    return api.put("/v1/backends/sagemaker", {"config": config}, format="json", **caller.headers)


@pytest.fixture
def listener():
    """A TCP server on loopback that records whether anything connected to it."""
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.2)
    connected, stop = [], threading.Event()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except TimeoutError:
                continue
            connected.append(True)
            conn.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1], connected
    stop.set()
    thread.join()
    server.close()


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["endpoint_url", "sts_endpoint_url", "logs_endpoint_url"])
@pytest.mark.parametrize("url", EVIL_URLS)
def test_evil_endpoint_is_400_naming_the_setting(api, operator, settings, field, url):
    settings.TRAIN_AWS_ENDPOINT_HOSTS = PRODUCTION_HOSTS
    response = put(api, operator, {**VALID, field: url})
    assert response.status_code == 400, response.content
    assert f"config.{field}" in response.json(), response.json()
    assert not BackendConfig.objects.exists()


@pytest.mark.django_db
def test_the_backslash_userinfo_url_never_reaches_loopback(api, operator, settings, listener):
    settings.TRAIN_AWS_ENDPOINT_HOSTS = PRODUCTION_HOSTS
    port, connected = listener
    url = f"https://127.0.0.1:{port}\\@api.sagemaker.eu-west-1.amazonaws.com"
    response = put(api, operator, {**VALID, "endpoint_url": url})
    assert response.status_code == 400
    assert "'@'" in response.json()["config.endpoint_url"][0]
    # A configuration stored before this check (or written around it) is refused when used, too.
    stored = {**VALID, "endpoint_url": url, "external_id": "x" * 40}
    with pytest.raises(BackendError, match="endpoint_url is not allowed"):
        SageMakerBackend(stored).cancel(RemoteRef(name="train-x"))
    assert SageMakerBackend(stored).poll([RemoteRef(name="train-x")]) == {}
    assert connected == []


@pytest.mark.django_db
@pytest.mark.parametrize(("typed", "stored"), [
    ("https://API.SageMaker.EU-West-1.amazonaws.com", "https://api.sagemaker.eu-west-1.amazonaws.com"),
    ("https://api.sagemaker.eu-west-1.amazonaws.com./", "https://api.sagemaker.eu-west-1.amazonaws.com"),
    ("HTTPS://vpce-0a1b.api.sagemaker.eu-west-1.vpce.amazonaws.com:443",
     "https://vpce-0a1b.api.sagemaker.eu-west-1.vpce.amazonaws.com:443"),
])
def test_allowed_endpoints_are_stored_in_normal_form(api, operator, settings, typed, stored):
    settings.TRAIN_AWS_ENDPOINT_HOSTS = PRODUCTION_HOSTS
    response = put(api, operator, {**VALID, "endpoint_url": typed})
    assert response.status_code == 200, response.content
    assert response.json()["config"]["endpoint_url"] == stored


@pytest.mark.parametrize(("url", "allowed"), [
    ("https://localhost.:4566", ["localhost"]),
    ("http://[::1]:4566", ["::1"]),
    ("http://127.0.0.1:4566", ["127.0.0.1"]),
    ("https://xn--bcher-kva.example.com", [".example.com"]),
])
def test_exact_hosts_match_after_normalisation(url, allowed):
    assert checked_endpoint_url(url, allowed_hosts=allowed)


def test_a_suffix_pattern_never_matches_an_ip_address():
    with pytest.raises(EndpointError):
        checked_endpoint_url("https://10.0.0.1", allowed_hosts=[".0.0.1"])


def test_each_service_is_called_on_its_own_endpoint(sagemaker_config, fake_cloud, moto_url):
    with FakeCloud(seed=SEED) as sts, FakeCloud(seed=SEED) as logs:
        sts.fallback_url = logs.fallback_url = moto_url
        config = {**sagemaker_config, "sts_endpoint_url": sts.url, "logs_endpoint_url": logs.url}
        backend = SageMakerBackend(config)
        backend.poll([RemoteRef(name="train-x")])
        backend.logs(RemoteRef(name="train-x"))
    assert fake_cloud.calls[("sagemaker", "DescribeTrainingJob")] == 1
    assert fake_cloud.forwarded == []  # neither AssumeRole nor log reads went to the SageMaker endpoint
    assert [call["RoleArn"] for call in sts.forwarded if call.get("Action") == "AssumeRole"] == [GATEWAY_ROLE]
    assert {call["target"] for call in logs.forwarded} == {"Logs_20140328.DescribeLogStreams"}


def test_unset_service_endpoints_use_the_aws_default():
    target = AwsTarget.from_config({"region": "eu-west-1", "endpoint_url": "https://api.sagemaker.eu-west-1.amazonaws.com"})
    assert (target.sts_endpoint_url, target.logs_endpoint_url) == ("", "")
