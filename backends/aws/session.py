"""boto3 clients for one account's configuration, with the credentials Train may use.

Credentials come from Train's own AWS credential chain (environment, shared config, instance or task
role). When the account configured `assume_role_arn`, those are exchanged through STS AssumeRole with
the account's ExternalId for short-lived credentials that botocore refreshes before they expire. No
AWS secret is ever read from or written to the database.

Clients are cached per (region, endpoint, role) in this process: building one costs milliseconds and
a little memory, and a cached client keeps its connection pool, refreshable credentials and request
pacing across calls. The cache is an optimisation only; another process builds its own.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings

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


@dataclass(frozen=True)
class AwsTarget:
    """Where and as whom Train calls AWS for one account."""

    region: str
    endpoint_url: str = ""
    assume_role_arn: str = ""
    external_id: str = ""

    @classmethod
    def from_config(cls, config: dict) -> AwsTarget:
        return cls(region=config["region"], endpoint_url=config.get("endpoint_url", ""),
                   assume_role_arn=config.get("assume_role_arn", ""), external_id=config.get("external_id", ""))


class RequestPacer:
    """A token bucket shared by every client of one target: each HTTP attempt (retries included)
    takes a token, waiting when the bucket is empty."""

    def __init__(self, rate: float | None = None, burst: int | None = None):
        self.rate = REQUESTS_PER_SECOND if rate is None else rate
        self.burst = REQUEST_BURST if burst is None else burst
        self.tokens, self.updated = float(self.burst), time.monotonic()
        self.lock = threading.Lock()

    def wait(self, **_event) -> None:
        while True:
            with self.lock:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                delay = (1 - self.tokens) / self.rate
            time.sleep(delay)


class AwsClients:
    """The clients the SageMaker backend uses for one target. Thread-safe, like boto3 clients."""

    def __init__(self, target: AwsTarget):
        import boto3
        import botocore.session

        self.target = target
        self.pacer = RequestPacer()
        core = botocore.session.get_session()
        if target.assume_role_arn:
            core.get_component("credential_provider").insert_before("env", _assume_role_provider(target))
        self.session = boto3.Session(botocore_session=core, region_name=target.region)
        self.sagemaker = self._client("sagemaker", retries=RETRY_ATTEMPTS)
        self.sagemaker_create = self._client("sagemaker", retries=1)
        self.sagemaker_poll = self._client("sagemaker", retries=POLL_RETRY_ATTEMPTS,
                                           read_timeout=POLL_READ_TIMEOUT_SECONDS)
        self.logs = self._client("logs", retries=RETRY_ATTEMPTS)

    def _client(self, service: str, *, retries: int, read_timeout: float | None = None):
        from botocore.config import Config

        config = Config(
            connect_timeout=CONNECT_TIMEOUT_SECONDS,
            read_timeout=min(read_timeout or math.inf, settings.TRAIN_AWS_READ_TIMEOUT_SECONDS),
            retries={"mode": "standard", "total_max_attempts": retries}, user_agent_extra="train",
        )
        client = self.session.client(service, endpoint_url=self.target.endpoint_url or None, config=config)
        client.meta.events.register(f"before-send.{client.meta.service_model.service_id.hyphenize()}", self.pacer.wait)
        return client


def _assume_role_provider(target: AwsTarget):
    """A credential provider that assumes the account's role with its ExternalId, using Train's own
    credential chain for the STS call, and refreshes the result ahead of expiry."""
    import boto3
    from botocore.config import Config
    from botocore.credentials import CredentialProvider, DeferredRefreshableCredentials

    def fetch() -> dict:
        sts = boto3.Session(region_name=target.region).client(
            "sts", endpoint_url=target.endpoint_url or None,
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


_cache: OrderedDict[AwsTarget, AwsClients] = OrderedDict()
_cache_lock = threading.Lock()


def aws_clients(config: dict) -> AwsClients:
    """The cached clients for an account's configuration (built on first use)."""
    target = AwsTarget.from_config(config)
    with _cache_lock:
        clients = _cache.get(target)
        if clients is not None:
            _cache.move_to_end(target)
            return clients
    clients = AwsClients(target)
    with _cache_lock:
        clients = _cache.setdefault(target, clients)
        while len(_cache) > CLIENT_CACHE_SIZE:
            _cache.popitem(last=False)
    return clients


def aws_clients_clear() -> None:
    """Forget every cached client (tests that change credentials between cases)."""
    with _cache_lock:
        _cache.clear()
