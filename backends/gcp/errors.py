"""Google API errors as Train sees them: which are worth retrying, and the BackendError for each.

Google answers errors as `{"error": {"code": <HTTP status>, "message": ..., "status": "<RPC code>"}}`.
"""

from __future__ import annotations

from backends.base import WAITING_QUOTA, BackendError

# 429 RESOURCE_EXHAUSTED is both the per-minute request quota and a resource quota (GPUs in the region):
# either resolves by itself, so a refused create waits and a refused read backs off.
THROTTLED_RETRY_AFTER_SECONDS = 30.0
# 408 and 409 ABORTED are Google's "try again" answers besides 429 and 5xx.
TRANSIENT_STATUSES = frozenset({408, 429})


class GoogleApiError(Exception):
    """An HTTP error answer of a Google API."""

    def __init__(self, http_status: int, status: str, message: str):
        super().__init__(f"{http_status} {status}: {message}")
        self.http_status, self.status, self.message = http_status, status, message

    @classmethod
    def from_response(cls, response) -> GoogleApiError:
        try:
            body = response.json()
        except ValueError:
            body = {}
        error = body.get("error") if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
        message = str(error.get("message") or response.text[:300] or response.reason or "")
        return cls(response.status_code, str(error.get("status") or ""), message[:1000])

    @property
    def retryable(self) -> bool:
        return self.http_status >= 500 or self.http_status in TRANSIENT_STATUSES or self.status == "ABORTED"

    @property
    def not_found(self) -> bool:
        return self.http_status == 404


def backend_error(exc: Exception, doing: str) -> BackendError:
    """Any failure of a Google call as a BackendError: permanent when Google refused the request itself."""
    from google.auth.exceptions import RefreshError

    if isinstance(exc, GoogleApiError):
        throttled = exc.http_status == 429
        return BackendError(f"Google refused to {doing}: {exc.status or exc.http_status}: {exc.message}",
                            permanent=not exc.retryable,
                            retry_after=THROTTLED_RETRY_AFTER_SECONDS if throttled else None,
                            waiting=WAITING_QUOTA if throttled and doing.startswith("create") else None)
    if isinstance(exc, RefreshError):
        # Train's own identity, or its impersonation of the account's service account, was refused:
        # a missing roles/iam.serviceAccountTokenCreator binding does not fix itself, an outage does.
        from backends.gcp.artifact_registry import _reason, _retryable

        return BackendError(f"No Google access token to {doing}: {_reason(exc)}", permanent=not _retryable(exc))
    return BackendError(f"Could not reach Google to {doing}: {exc}")
