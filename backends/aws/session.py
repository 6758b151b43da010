"""boto3 clients for one account's configuration, with the credentials Train may use.

Credentials come from Train's own AWS credential chain (environment, shared config, instance or task
role). When the account configured `assume_role_arn`, those are exchanged through STS AssumeRole with
the account's ExternalId for short-lived credentials that botocore refreshes before they expire. No
AWS secret is ever read from or written to the database.

Each AWS service gets its own endpoint (SageMaker, STS, CloudWatch Logs, the ECR API): a SageMaker VPC
endpoint serves SageMaker only, so AssumeRole, log reads and ECR calls must not be sent to it. An unset
endpoint means the service's default regional endpoint.

With TRAIN_CLOUD_EMULATOR set (development only), every one of those endpoints is the emulator, and
Train's own credentials are fixed dummies instead of its credential chain (so no instance-metadata
lookup ever happens): an account configures sagemaker with its usual fields and its jobs run there.

Clients are cached per (region, endpoints, role) in this process: building one costs milliseconds and
a little memory, and a cached client keeps its connection pool, refreshable credentials and request
pacing across calls. The cache is an optimisation only; another process builds its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.conf import settings

from backends.aws.config import ENDPOINTS, aws_endpoint_url
from backends.base import BackendError
from backends.common.client_cache import ClientCache
from backends.common.endpoints import EndpointError
from backends.common.pacing import RequestPacer
from backends.common.settings import read_timeout_seconds

# Role chaining (Train's own role assuming the account's) caps a session at one hour.
ASSUME_ROLE_SECONDS = 3600
ROLE_SESSION_NAME = "train"
CLIENT_CACHE_SIZE = 256
CONNECT_TIMEOUT_SECONDS = 5
# botocore retries throttling and 5xx answers with exponential back-off and jitter (standard mode).
# Creates are never retried by botocore: an ambiguous failure is resolved by a Describe first.
RETRY_ATTEMPTS = 5
# Polls run on a time budget (TRAIN_POLL_BATCH_SECONDS) and a missed answer is simply asked again next
# cycle: their client waits less and retries less, so one request takes at most about 3 x (5 + 5) + 3 s.
POLL_READ_TIMEOUT_SECONDS = 5
POLL_RETRY_ATTEMPTS = 3
# Client-side pacing per AWS principal and region, below SageMaker's per-account control-plane limits
# (reported as low as 2 requests/s for ListTrainingJobs); bursts are allowed, sustained load is not.
REQUESTS_PER_SECOND = 5.0
REQUEST_BURST = 10
# Train's own AWS credentials under TRAIN_CLOUD_EMULATOR: the emulator checks no signature.
EMULATOR_CREDENTIALS = {"aws_access_key_id": "emulator", "aws_secret_access_key": "emulator",
                        "aws_session_token": "emulator"}


def aws_read_timeout_seconds() -> int:
    """How long an AWS call may wait for its answer (TRAIN_SAGEMAKER_READ_TIMEOUT_SECONDS, or the
    older TRAIN_AWS_READ_TIMEOUT_SECONDS; 30 s); a create that times out is looked up before a retry."""
    return read_timeout_seconds("sagemaker", aliases=("TRAIN_AWS_READ_TIMEOUT_SECONDS",))


@dataclass(frozen=True)
class AwsTarget:
    """Where and as whom Train calls AWS for one account."""

    region: str
    endpoint_url: str = ""  # SageMaker
    sts_endpoint_url: str = ""
    logs_endpoint_url: str = ""
    ecr_endpoint_url: str = ""
    assume_role_arn: str = ""
    external_id: str = ""
    emulated: bool = False  # TRAIN_CLOUD_EMULATOR: every endpoint is the emulator, own credentials dummies

    @classmethod
    def from_config(cls, config: dict) -> AwsTarget:
        """The target of a stored configuration. Endpoints are checked again here, so one stored
        before a tighter allow-list (or by an older release) is never called."""
        if settings.TRAIN_CLOUD_EMULATOR:
            # Everything goes to the emulator, whatever endpoints the account configured.
            return cls(region=config["region"], assume_role_arn=config.get("assume_role_arn", ""),
                       external_id=config.get("external_id", ""), emulated=True,
                       **{key: settings.TRAIN_CLOUD_EMULATOR for key in ENDPOINTS})
        endpoints = {}
        for key in ENDPOINTS:
            if config.get(key):
                try:
                    endpoints[key] = aws_endpoint_url(config[key])
                except EndpointError as exc:
                    raise BackendError(f"The configured {key} is not allowed: {exc}", permanent=True) from exc
        return cls(region=config["region"], assume_role_arn=config.get("assume_role_arn", ""),
                   external_id=config.get("external_id", ""), **endpoints)


class AwsClients:
    """The clients the SageMaker backend uses for one target. Thread-safe, like boto3 clients."""

    def __init__(self, target: AwsTarget):
        import boto3
        import botocore.session

        self.target = target
        self.pacer = RequestPacer(REQUESTS_PER_SECOND, REQUEST_BURST)
        core = botocore.session.get_session()
        if target.assume_role_arn:
            core.get_component("credential_provider").insert_before("env", _assume_role_provider(target))
        elif target.emulated:
            core.set_credentials(*EMULATOR_CREDENTIALS.values())
        self.session = boto3.Session(botocore_session=core, region_name=target.region)
        self.sagemaker = self._client("sagemaker", target.endpoint_url, retries=RETRY_ATTEMPTS)
        self.sagemaker_create = self._client("sagemaker", target.endpoint_url, retries=1)
        self.sagemaker_poll = self._client("sagemaker", target.endpoint_url, retries=POLL_RETRY_ATTEMPTS,
                                           read_timeout=POLL_READ_TIMEOUT_SECONDS)
        self.logs = self._client("logs", target.logs_endpoint_url, retries=RETRY_ATTEMPTS)
        self.ecr = self._client("ecr", target.ecr_endpoint_url, retries=RETRY_ATTEMPTS)

    def _client(self, service: str, endpoint_url: str, *, retries: int, read_timeout: float | None = None):
        from botocore.config import Config

        config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=min(read_timeout or math.inf, aws_read_timeout_seconds()),
            retries={"mode": "standard", "total_max_attempts": retries}, user_agent_extra="train",
        )
        client = self.session.client(service, endpoint_url=endpoint_url or None, config=config)
        client.meta.events.register(f"before-send.{client.meta.service_model.service_id.hyphenize()}", self.pacer.wait)
        return client


def _assume_role_provider(target: AwsTarget):
    """A credential provider that assumes the account's role with its ExternalId, using Train's own
    credential chain for the STS call, and refreshes the result ahead of expiry."""
    import boto3
    from botocore.config import Config
    from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials

    def fetch() -> dict:
        own = EMULATOR_CREDENTIALS if target.emulated else {}  # else Train's own credential chain
        sts = boto3.Session(region_name=target.region, **own).client(
            "sts", endpoint_url=target.sts_endpoint_url or None,
            config=Config(connect_timeout=CONNECT_TIMEOUT_SECONDS, retries={"mode": "standard"}),
        )
        answer = sts.assume_role(RoleArn=target.assume_role_arn, RoleSessionName=ROLE_SESSION_NAME,
                                 ExternalId=target.external_id, DurationSeconds=ASSUME_ROLE_SECONDS)
        creds = answer["Credentials"]
        return {"access_key": creds["AccessKeyId"], "secret_key": creds["SecretAccessKey"],
                "token": creds["SessionToken"], "expiry_time": creds["Expiration"].isoformat()}

    class AssumeAccountRole(CredentialProvider):
        METHOD = "train-assume-role"
        CANONICAL_NAME = "TrainAssumeRole"

        def load(self):
            # Deferred: STS is called when the first request needs credentials, not when a client is built.
            return DeferredRefreshableCredentials(refresh_using=fetch, method=self.METHOD)

    return AssumeAccountRole()


_cache: ClientCache[AwsClients] = ClientCache(AwsClients, size=CLIENT_CACHE_SIZE)


def aws_clients(config: dict) -> AwsClients:
    """The cached clients for an account's configuration (built on first use)."""
    return _cache.get(AwsTarget.from_config(config))


def aws_clients_clear() -> None:
    """Forget every cached client (tests that change credentials between cases)."""
    _cache.clear()
