"""The REST client for one account's workspace: ARM and the run-history data plane, with Train's
Entra ID token, request pacing, and retries of what Azure refused without applying.

One `requests.Session` per (tenant, ARM endpoint, subscription), cached in the process: its pool
keeps connections open, and its pacer is shared by every call Train makes as its app on that
subscription, which is how ARM counts reads (per subscription, principal and region).
"""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass

import requests
from django.conf import settings

from backends.azure import api
from backends.azure.config import arm_endpoint_url
from backends.azure.entra import entra_token
from backends.azure.errors import EXPIRED_TOKEN_CODES, THROTTLED_STATUS, AzureError, parse_error
from backends.base import BackendError
from backends.common.client_cache import ClientCache
from backends.common.endpoints import EndpointError, checked_endpoint_url
from backends.common.pacing import RequestPacer
from backends.common.settings import read_timeout_seconds

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 5
# ARM refills a principal's read bucket at 25 requests/s per subscription and region (bucket 250).
# Train keeps to 10/s with bursts of 50, leaving most of the budget to the customer's own tools.
READS_PER_SECOND = 10.0
READ_BURST = 50
# Retries of a refused (429) or failed (5xx, connection) read or idempotent write, with jittered
# exponential back-off, honouring Retry-After up to MAX_WAIT_SECONDS inside one call.
ATTEMPTS = 4
BACKOFF_SECONDS = 0.5
MAX_WAIT_SECONDS = 10.0
POLL_ATTEMPTS = 2
CLIENT_CACHE_SIZE = 256



def azure_read_timeout_seconds() -> int:
    """How long an Azure call may wait for its answer (a job PUT that times out is looked up before a
    retry): TRAIN_AZURE_ML_READ_TIMEOUT_SECONDS, or its older name TRAIN_AZURE_READ_TIMEOUT_SECONDS."""
    return read_timeout_seconds("azure-ml", aliases=("TRAIN_AZURE_READ_TIMEOUT_SECONDS",))


@dataclass(frozen=True)
class AzureTarget:
    tenant_id: str
    subscription_id: str
    arm_endpoint: str = api.ARM_ENDPOINT

    @classmethod
    def from_config(cls, config: dict) -> AzureTarget:
        if settings.TRAIN_CLOUD_EMULATOR:
            endpoint = settings.TRAIN_CLOUD_EMULATOR
        elif config.get("arm_endpoint"):
            try:
                endpoint = arm_endpoint_url(config["arm_endpoint"])  # checked again: the allow-list may be tighter now
            except EndpointError as exc:
                raise BackendError(f"The configured arm_endpoint is not allowed: {exc}", permanent=True) from exc
        else:
            endpoint = api.ARM_ENDPOINT
        return cls(tenant_id=config["tenant_id"], subscription_id=config["subscription_id"], arm_endpoint=endpoint)


class AzureClient:
    """Shared by the threads of a process. requests does not promise a Session is thread-safe; Train
    uses it only for its connection pool (urllib3's, which is) and sends every header per request,
    keeping no cookies or other per-call state on it."""

    def __init__(self, target: AzureTarget):
        self.target = target
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "train"
        self.pacer = RequestPacer(READS_PER_SECOND, READ_BURST)

    def _token(self, fresh: bool = False) -> str:
        return entra_token(self.target.tenant_id, api.ARM_SCOPE, fresh=fresh)

    def arm(self, method: str, path: str, *, api_version: str, body: dict | None = None,
            attempts: int = ATTEMPTS, read_timeout: float | None = None) -> requests.Response:
        return self.call(method, self.target.arm_endpoint + path, params={"api-version": api_version}, body=body,
                         attempts=attempts, read_timeout=read_timeout)

    def data_plane(self, base: str, path: str, **kwargs) -> requests.Response:
        """A run-history call on the workspace's `api` endpoint (found through discovery)."""
        try:
            base = checked_endpoint_url(base, allowed_hosts=settings.TRAIN_AZURE_ML_ENDPOINT_HOSTS)
        except EndpointError as exc:
            raise BackendError(f"The workspace's run-history endpoint {base!r} is not allowed: {exc}",
                               permanent=True) from exc
        return self.call("GET", base + path, **kwargs)

    def call(self, method: str, url: str, *, params: dict | None = None, body: dict | None = None,
             attempts: int = ATTEMPTS, read_timeout: float | None = None, token: bool = True) -> requests.Response:
        """The successful answer, or AzureError / requests.RequestException from the last attempt.
        `attempts` counts every try: a caller whose request must not be repeated blindly (a job PUT)
        passes 1 and decides itself. A 401 for an expired token is renewed once and repeated (Azure
        refused it without applying it), whatever `attempts` says."""
        ceiling = azure_read_timeout_seconds()
        timeout = (CONNECT_TIMEOUT_SECONDS, min(read_timeout or ceiling, ceiling))
        renewed, attempt = False, 0
        while True:
            attempt += 1
            self.pacer.wait()
            headers = {"Authorization": f"Bearer {self._token(fresh=renewed)}"} if token else {}
            try:
                response = self.session.request(method, url, params=params, json=body, headers=headers,
                                                timeout=timeout, allow_redirects=False)
            except requests.RequestException:
                if attempt >= attempts:
                    raise
                self._back_off(attempt, None)
                continue
            if response.status_code < 400:
                return response
            error = parse_error(response)
            if response.status_code == 401 and token and not renewed and (
                    error.code in EXPIRED_TOKEN_CODES or not error.code.isalpha()):
                renewed = True  # refused before it was applied: renew the token once and repeat
                attempt -= 1
                continue
            retryable = response.status_code == THROTTLED_STATUS or response.status_code >= 500
            if not retryable or attempt >= attempts or (error.retry_after or 0) > MAX_WAIT_SECONDS:
                raise error
            self._back_off(attempt, error.retry_after)

    @staticmethod
    def _back_off(attempt: int, retry_after: float | None) -> None:
        delay = retry_after if retry_after is not None else BACKOFF_SECONDS * 2 ** (attempt - 1)
        time.sleep(min(delay, MAX_WAIT_SECONDS) * (1 if retry_after is not None else random.uniform(0.5, 1.5)))  # noqa: S311 (jitter)


_cache: ClientCache[AzureClient] = ClientCache(AzureClient, size=CLIENT_CACHE_SIZE)


def azure_client(config: dict) -> AzureClient:
    return _cache.get(AzureTarget.from_config(config))


def azure_clients_clear() -> None:
    _cache.clear()


__all__ = ["AzureClient", "AzureError", "azure_client", "azure_clients_clear"]
