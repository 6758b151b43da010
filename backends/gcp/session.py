"""Calling Google for one account: where each API lives, with whose token, at what pace.

Credentials: Train's own Application Default Credentials call IAM Credentials `generateAccessToken`
for the account's `impersonate_service_account` (google-auth's impersonated credentials, one hour).
google-auth's AuthorizedSession renews the token before it expires (3m45s early) and once more on a
401; the session, and with it the token, is cached per target in this process. No Google secret is
read from or written to the database.

With TRAIN_CLOUD_EMULATOR set (development only), every call goes to that URL instead: Vertex AI,
IAM, IAM Credentials, Cloud Logging and the OAuth token endpoint where Train's own credentials come
from, so an account configures vertex-ai with its usual fields alone (decision 0073).

Pacing: Vertex AI allows 600 resource-management requests (get, list, cancel) and 60 job creations
per minute per project and region. One token bucket per (project, region) and kind keeps this
process below both; reads that get 429 or 5xx back off exponentially and try again, within the
caller's deadline.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from django.conf import settings

from backends.base import BackendError
from backends.common.client_cache import ClientCache
from backends.common.endpoints import EndpointError
from backends.common.pacing import RequestPacer
from backends.common.settings import read_timeout_seconds
from backends.gcp.artifact_registry import CLOUD_PLATFORM_SCOPE, GENERATE_ACCESS_TOKEN_PATH, IAM_CREDENTIALS_URL
from backends.gcp.errors import GoogleApiError

IAM_URL = "https://iam.googleapis.com"
LOGGING_URL = "https://logging.googleapis.com"
VERTEX_URL = "https://{region}-aiplatform.googleapis.com"
TOKEN_LIFETIME_SECONDS = 3600
# Emulator mode: Train's own credentials are an OAuth refresh token the emulator's token endpoint honours.
EMULATOR_REFRESH_TOKEN = "train-emulator"  # noqa: S105 (not a secret: accepted only by the local emulator)
CONNECT_TIMEOUT_SECONDS = 5
# Below the quotas with room for a burst: 9 reads/s is 540/min (+20 burst) of the 600; 0.9 creates/s.
READS_PER_SECOND, READ_BURST = 9.0, 20
CREATES_PER_SECOND, CREATE_BURST = 0.9, 5
READ_TRIES = 3
READ_BACKOFF_SECONDS = 0.5
CLIENT_CACHE_SIZE = 256

_pacers: dict[tuple[str, str, str], RequestPacer] = {}
_pacers_lock = threading.Lock()


def _pacer(project: str, region: str, kind: str) -> RequestPacer:
    rate, burst = (CREATES_PER_SECOND, CREATE_BURST) if kind == "create" else (READS_PER_SECOND, READ_BURST)
    with _pacers_lock:
        return _pacers.setdefault((project, region, kind), RequestPacer(rate, burst))


def emulator() -> str:
    return settings.TRAIN_CLOUD_EMULATOR


def source_credentials():
    """Train's own Google identity: Application Default Credentials, or the emulator's."""
    if emulator():
        from google.oauth2.credentials import Credentials

        return Credentials(token=None, refresh_token=EMULATOR_REFRESH_TOKEN, token_uri=f"{emulator()}/token",
                           client_id="train", client_secret="emulator", scopes=[CLOUD_PLATFORM_SCOPE])  # noqa: S106
    import google.auth

    credentials, _project = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    return credentials


def generate_access_token_url(service_account: str) -> str:
    return (emulator() or IAM_CREDENTIALS_URL) + GENERATE_ACCESS_TOKEN_PATH.format(service_account)


def impersonated(service_account: str):
    """google-auth credentials of `service_account`, obtained with Train's own identity."""
    from google.auth import impersonated_credentials

    return impersonated_credentials.Credentials(
        source_credentials=source_credentials(), target_principal=service_account,
        target_scopes=[CLOUD_PLATFORM_SCOPE], lifetime=TOKEN_LIFETIME_SECONDS,
        iam_endpoint_override=generate_access_token_url(service_account))


def google_read_timeout_seconds() -> int:
    """How long a Google API call (Vertex AI, IAM Credentials, Cloud Logging) may wait for its answer; a
    create that times out is looked up by its train-job-id label before another try:
    TRAIN_VERTEX_AI_READ_TIMEOUT_SECONDS, or TRAIN_GOOGLE_READ_TIMEOUT_SECONDS."""
    return read_timeout_seconds("vertex-ai", aliases=("TRAIN_GOOGLE_READ_TIMEOUT_SECONDS",))


@dataclass(frozen=True)
class GoogleTarget:
    """Where and as whom Train calls Google for one account."""

    project: str
    region: str
    service_account: str  # the one Train impersonates
    api_endpoint: str = ""
    emulator: str = ""

    @classmethod
    def from_config(cls, config: dict) -> GoogleTarget:
        """The target of a stored configuration; an endpoint is checked again here, so one stored before
        a tighter allow-list is never called."""
        from backends.gcp.config import vertex_endpoint_url

        endpoint = ""
        if config.get("api_endpoint"):
            try:
                endpoint = vertex_endpoint_url(config["api_endpoint"])
            except EndpointError as exc:
                raise BackendError(f"The configured api_endpoint is not allowed: {exc}", permanent=True) from exc
        return cls(project=config["project"], region=config["region"],
                   service_account=config["impersonate_service_account"], api_endpoint=endpoint, emulator=emulator())

    @property
    def vertex_url(self) -> str:
        return self.emulator or self.api_endpoint or VERTEX_URL.format(region=self.region)

    @property
    def logging_url(self) -> str:
        return self.emulator or LOGGING_URL

    @property
    def iam_url(self) -> str:
        return self.emulator or IAM_URL

    @property
    def parent(self) -> str:
        return f"projects/{self.project}/locations/{self.region}"


class GoogleSession:
    """An AuthorizedSession as the account's service account, paced. Thread-safe for requests."""

    def __init__(self, target: GoogleTarget):
        from google.auth.transport.requests import AuthorizedSession

        self.target = target
        self.session = AuthorizedSession(impersonated(target.service_account))
        self.reads = _pacer(target.project, target.region, "read")
        self.creates = _pacer(target.project, target.region, "create")

    def call(self, method: str, url: str, *, body: dict | None = None, params: dict | None = None,
             create: bool = False, deadline: float | None = None) -> dict:
        """The decoded answer, or GoogleApiError / a transport or token error. Creates are tried once
        (an ambiguous create is looked up, never blindly repeated); other calls are idempotent and
        retried on 429, 5xx and lost connections while the deadline allows."""
        import requests

        tries = 1 if create else READ_TRIES
        for attempt in range(tries):
            (self.creates if create else self.reads).wait()
            try:
                response = self.session.request(method, url, json=body, params=params,
                                                timeout=(CONNECT_TIMEOUT_SECONDS, google_read_timeout_seconds()))
                if response.status_code < 400:
                    return response.json() if response.content else {}
                error = GoogleApiError.from_response(response)
                if not error.retryable:
                    raise error
            except requests.RequestException as exc:
                error = exc
            delay = READ_BACKOFF_SECONDS * 2 ** attempt
            if attempt == tries - 1 or (deadline is not None and time.monotonic() + delay >= deadline):
                raise error
            time.sleep(delay)
        raise AssertionError("unreachable")


_cache: ClientCache[GoogleSession] = ClientCache(GoogleSession, size=CLIENT_CACHE_SIZE)


def google_session(config: dict) -> GoogleSession:
    """The cached session for an account's configuration (built on first use)."""
    return _cache.get(GoogleTarget.from_config(config))


def google_sessions_clear() -> None:
    """Forget every cached session and pacer (tests that change the emulator between cases)."""
    _cache.clear()
    with _pacers_lock:
        _pacers.clear()
