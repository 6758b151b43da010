"""A credentials provider for the mirror copier that serves a cached cloud token first and a fresh one
when the registry refused it.

The registry client asks its provider again only when the credentials it holds have expired or a
request with them was refused. An expired token is never served from the caches behind this (they
check expiry themselves). A refusal is ambiguous: the token may be revoked, or it may only lack a
scope the registry wants on top (a cross-repository mount asks for pull on the source repository, and
the client takes a new token for that). So the first call of a provider may take a cached token, and a
later call fetches a fresh one at most once per FRESH_INTERVAL_SECONDS: a revoked token is replaced
within one interval, and a copy that mounts a hundred blobs does not ask the cloud for a hundred tokens.
"""

import threading
import time
from collections.abc import Callable

from registry.client import Credentials

FRESH_INTERVAL_SECONDS = 30


class RenewingProvider:
    def __init__(self, fetch: Callable[[bool], Credentials]):
        self._fetch = fetch  # fetch(fresh) -> Credentials; fresh=True must not answer from a cache
        self._lock = threading.Lock()
        self._calls = 0
        self._fresh_at = float("-inf")

    def __call__(self) -> Credentials:
        with self._lock:
            fresh = self._calls > 0 and time.monotonic() - self._fresh_at >= FRESH_INTERVAL_SECONDS
            self._calls += 1
            if fresh:
                self._fresh_at = time.monotonic()
        return self._fetch(fresh)
