"""A small OCI distribution client: what the mirror copier needs to write an image into another registry.

It knows no cloud. A target is a registry URL plus a credentials provider (a callable returning a
username and password, asked again when they expire or are refused). Both of the spec's auth schemes
work: Basic, and the Bearer challenge flow (`realm`, `service`, `scope`), with one cached token per
scope, refreshed when it expires or the registry answers `invalid_token`.

Safety rules it keeps:
- A Bearer realm must be on the registry's own host or on a host the target names; credentials are
  never sent to a realm a registry chose freely.
- Redirects (object storage behind a registry) are followed for at most three hops, and Authorization
  never crosses to another host.
- 429, 5xx, timeouts and dropped connections are retried with exponential backoff (Retry-After
  honoured); a request body is re-created for each try, never buffered.
"""

from __future__ import annotations

import base64
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

log = logging.getLogger(__name__)

MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_REDIRECTS = 3
# Tokens are renewed this long before they expire, so a request never races the expiry.
TOKEN_EXPIRY_MARGIN_SECONDS = 30
DEFAULT_TOKEN_SECONDS = 60  # the token spec's default when a token server gives no expires_in
MAX_RETRY_AFTER_SECONDS = 60
CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    expires_at: datetime | None = None  # when the provider knows it (ECR tokens, OAuth access tokens)

    def expired(self) -> bool:
        return self.expires_at is not None and self.expires_at <= datetime.now(UTC)


CredentialsProvider = Callable[[], Credentials]


class RegistryClientError(Exception):
    """A request to the target failed. `permanent`: trying again cannot help (refused, not found)."""

    def __init__(self, message: str, *, status: int | None = None, permanent: bool = False):
        super().__init__(message)
        self.message, self.status, self.permanent = message, status, permanent


class SizedBody:
    """A request body of known length, produced chunk by chunk (flat memory, streamed by urllib3)."""

    def __init__(self, length: int, chunks: Iterator[bytes]):
        self._length, self._chunks = length, chunks

    def __len__(self):
        return self._length

    def __iter__(self):
        return self._chunks


def _challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.partition(" ")
    return scheme.lower(), dict(CHALLENGE_PARAM_RE.findall(rest))


def with_query(url: str, **params) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


class OciClient:
    """Requests against one registry, authenticated for each repository scope it touches."""

    def __init__(self, base_url: str, credentials: CredentialsProvider | None, *, realm_hosts=(),
                 timeout=(10, 120), max_tries: int = 6, backoff_seconds: float = 0.5, session=None):
        self.base_url = base_url.rstrip("/")
        self.host = urlsplit(self.base_url).netloc.lower()
        self._provider = credentials
        self._credentials: Credentials | None = None
        self.realm_hosts = frozenset(h.lower() for h in realm_hosts) | {self.host}
        self.timeout, self.max_tries, self.backoff_seconds = timeout, max_tries, backoff_seconds
        self.session = session or requests.Session()
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[str, float]] = {}  # scope -> (token, monotonic expiry)
        self._basic = False  # the registry asked for Basic: send it up front from now on

    # --- credentials and tokens ---------------------------------------------------------------------
    def credentials(self, *, renew: bool = False) -> Credentials | None:
        with self._lock:
            if self._provider is not None and (renew or self._credentials is None or self._credentials.expired()):
                self._credentials = self._provider()
            return self._credentials

    def _auth_header(self, scope: str) -> dict:
        if self._basic:
            creds = self.credentials()
            if creds is None:
                return {}
            pair = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
            return {"Authorization": f"Basic {pair}"}
        token = self._tokens.get(scope)
        if token and token[1] > time.monotonic():
            return {"Authorization": f"Bearer {token[0]}"}
        return {}

    def _fetch_token(self, params: dict[str, str], scope: str, *, renew: bool) -> None:
        realm = params.get("realm", "")
        realm_parts = urlsplit(realm)
        if realm_parts.scheme not in ("https", "http") or realm_parts.netloc.lower() not in self.realm_hosts:
            raise RegistryClientError(f"{self.host} names a token realm on another host ({realm_parts.netloc!r}); "
                                      "credentials are not sent there", permanent=True)
        scopes = {s for s in (scope, params.get("scope", "")) if s}
        query = [("service", params["service"])] if params.get("service") else []
        query += [("scope", s) for s in sorted(scopes)]
        creds = self.credentials(renew=renew)
        auth = (creds.username, creds.password) if creds else None
        url = realm + ("&" if realm_parts.query else "?") + urlencode(query)
        response = self._send("GET", url, headers={}, auth=auth, body=None)
        if response.status_code in (401, 403):
            raise RegistryClientError(f"the token service of {self.host} refused the credentials",
                                      status=response.status_code, permanent=True)
        if response.status_code != 200:
            raise RegistryClientError(f"token service of {self.host} answered {response.status_code}",
                                      status=response.status_code)
        body = response.json()
        token = body.get("token") or body.get("access_token")
        if not token:
            raise RegistryClientError(f"the token service of {self.host} returned no token")
        lifetime = int(body.get("expires_in") or DEFAULT_TOKEN_SECONDS)
        self._tokens[scope] = (token, time.monotonic() + max(lifetime - TOKEN_EXPIRY_MARGIN_SECONDS, 1))

    # --- transport ----------------------------------------------------------------------------------
    def _send(self, method: str, url: str, *, headers: dict, body, auth=None) -> requests.Response:
        """One logical request: redirects followed without Authorization across hosts, and transient
        failures retried with backoff. `body` is None or a callable returning a fresh body."""
        for attempt in range(1, self.max_tries + 1):
            try:
                response = self._follow(method, url, headers=headers, body=body, auth=auth)
            except (requests.ConnectionError, requests.Timeout) as exc:
                if attempt == self.max_tries:
                    raise RegistryClientError(f"{method} {urlsplit(url).path} failed: {exc}") from exc
                self._pause(attempt, None)
                continue
            if response.status_code in RETRY_STATUSES and attempt < self.max_tries:
                self._pause(attempt, response.headers.get("Retry-After"))
                continue
            return response
        raise AssertionError("unreachable")

    def _pause(self, attempt: int, retry_after: str | None) -> None:
        delay = self.backoff_seconds * 2 ** (attempt - 1) * (0.5 + random.random())  # noqa: S311 (jitter)
        if retry_after and retry_after.isdigit():
            delay = max(delay, min(int(retry_after), MAX_RETRY_AFTER_SECONDS))
        time.sleep(delay)

    def _follow(self, method, url, *, headers, body, auth) -> requests.Response:
        origin = urlsplit(url).netloc.lower()
        for _hop in range(MAX_REDIRECTS + 1):
            data = body() if body is not None else None
            response = self.session.request(method, url, headers=headers, data=data, auth=auth,
                                            timeout=self.timeout, allow_redirects=False)
            if response.status_code not in (301, 302, 303, 307, 308) or "Location" not in response.headers:
                return response
            url = urljoin(url, response.headers["Location"])
            if urlsplit(url).scheme not in ("https", "http"):
                raise RegistryClientError(f"refusing a redirect to {urlsplit(url).scheme}:", permanent=True)
            if urlsplit(url).netloc.lower() != origin:
                # Object storage: presigned URLs carry their own authorisation.
                headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
                auth = None
            if response.status_code == 303:
                method, body = "GET", None
        raise RegistryClientError(f"more than {MAX_REDIRECTS} redirects from {self.host}", permanent=True)

    def request(self, method: str, path_or_url: str, *, scope: str, headers=None, body=None,
                expect=(200,)) -> requests.Response:
        """An authenticated request for `scope` (`repository:<name>:pull,push`); answers outside
        `expect` become RegistryClientError."""
        url = path_or_url if "://" in path_or_url else self.base_url + path_or_url
        renewed = False
        for _round in range(3):
            sent = {**(headers or {}), **self._auth_header(scope)}
            response = self._send(method, url, headers=sent, body=body)
            if response.status_code != 401:
                break
            scheme, params = _challenge(response.headers.get("WWW-Authenticate", ""))
            stale = "Authorization" in sent
            if scheme == "basic":
                if self._basic and stale and renewed:
                    break
                self._basic, renewed = True, stale or renewed
                if stale:
                    self.credentials(renew=True)
            elif scheme == "bearer":
                if stale and renewed:
                    break
                self._fetch_token(params, scope, renew=stale)
                renewed = renewed or stale
            else:
                break
        if response.status_code not in expect:
            raise _answer_error(method, url, response)
        return response

    # --- the distribution API ------------------------------------------------------------------------
    @staticmethod
    def _scope(repository: str, *actions: str) -> str:
        return f"repository:{repository}:{','.join(actions)}"

    def blob_exists(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repository}/blobs/{digest}", expect=(200, 404),
                                scope=self._scope(repository, "pull", "push"))
        return response.status_code == 200

    def blob_mount(self, repository: str, digest: str, source: str) -> bool:
        """Cross-repository mount inside this registry; False when the registry would rather take an upload."""
        scope = self._scope(repository, "pull", "push")
        query = urlencode({"mount": digest, "from": source})
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/?{query}", scope=scope, expect=(201, 202))
        if response.status_code == 202 and response.headers.get("Location"):
            # A session was opened instead; close it rather than leave it to the registry's expiry.
            self.request("DELETE", urljoin(self.base_url + "/", response.headers["Location"]), scope=scope,
                         expect=(200, 202, 204, 404))
        return response.status_code == 201

    def upload_start(self, repository: str) -> str:
        response = self.request("POST", f"/v2/{repository}/blobs/uploads/", expect=(202,),
                                scope=self._scope(repository, "pull", "push"))
        return urljoin(self.base_url + "/", response.headers["Location"])

    def upload_offset(self, repository: str, location: str) -> int | None:
        """Bytes the registry holds of the session at `location`, or None if the session is gone."""
        response = self.request("GET", location, expect=(204, 200, 404, 400),
                                scope=self._scope(repository, "pull", "push"))
        if response.status_code in (404, 400):
            return None
        _, _, end = response.headers.get("Range", "0--1").rpartition("-")
        return int(end) + 1 if end.lstrip("-").isdigit() and int(end) >= 0 else 0

    def upload_chunk(self, repository: str, location: str, start: int, length: int, chunks) -> str:
        response = self.request("PATCH", location, expect=(202,), scope=self._scope(repository, "pull", "push"),
                                headers={"Content-Type": "application/octet-stream",
                                         "Content-Range": f"{start}-{start + length - 1}"},
                                body=lambda: SizedBody(length, chunks()))
        return urljoin(location, response.headers.get("Location", location))

    def upload_finish(self, repository: str, location: str, digest: str, *, length: int = 0, chunks=None) -> None:
        body = (lambda: SizedBody(length, chunks())) if chunks is not None else None
        response = self.request("PUT", with_query(location, digest=digest), expect=(201,), body=body,
                                headers={"Content-Type": "application/octet-stream"},
                                scope=self._scope(repository, "pull", "push"))
        stored = response.headers.get("Docker-Content-Digest")
        if stored and stored != digest:
            raise RegistryClientError(f"{self.host} stored {stored} for {digest}", permanent=True)

    def manifest_exists(self, repository: str, digest: str) -> bool:
        response = self.request("HEAD", f"/v2/{repository}/manifests/{digest}", expect=(200, 404),
                                headers={"Accept": MANIFEST_ACCEPT}, scope=self._scope(repository, "pull", "push"))
        return response.status_code == 200

    def manifest_put(self, repository: str, reference: str, media_type: str, content: bytes) -> str:
        response = self.request("PUT", f"/v2/{repository}/manifests/{reference}", expect=(201,),
                                headers={"Content-Type": media_type}, body=lambda: content,
                                scope=self._scope(repository, "pull", "push"))
        return response.headers.get("Docker-Content-Digest", "")


def _answer_error(method: str, url: str, response: requests.Response) -> RegistryClientError:
    try:
        errors = response.json().get("errors") or []
        detail = "; ".join(f"{e.get('code')}: {e.get('message')}" for e in errors if isinstance(e, dict))
    except ValueError:
        detail = response.text[:200]
    permanent = response.status_code in (400, 401, 403, 404, 405, 413)
    path = urlsplit(url).path
    return RegistryClientError(f"{method} {path} answered {response.status_code}" + (f" ({detail})" if detail else ""),
                               status=response.status_code, permanent=permanent)
