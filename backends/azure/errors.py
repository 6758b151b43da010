"""Azure answers as Train sees them: ARM's error shape (`{"error": {"code", "message"}}`), which
refusals are worth retrying, and the BackendError for each."""

from __future__ import annotations

from backends.base import WAITING_QUOTA, BackendError

# ARM's answer to a workspace over its request budget; it says how long to wait in Retry-After.
THROTTLED_STATUS = 429
DEFAULT_RETRY_AFTER_SECONDS = 30.0
MAX_RETRY_AFTER_SECONDS = 300.0
# Refusals that resolve by themselves as other jobs finish: the job waits PENDING showing the message.
WAITING_CODES = {"QuotaExceeded": WAITING_QUOTA}
# A job PUT of a name that exists with another body: "A job with this name already exists".
NAME_TAKEN_MARKERS = ("already exists",)
# Tokens expire; one refused for that reason is renewed once and the request repeated.
EXPIRED_TOKEN_CODES = {"ExpiredAuthenticationToken", "InvalidAuthenticationToken"}


class AzureError(Exception):
    """A non-success answer from Azure."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None):
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message, self.retry_after = status, code, message, retry_after

    @property
    def name_taken(self) -> bool:
        return self.status in (400, 409) and any(marker in self.message for marker in NAME_TAKEN_MARKERS)

    @property
    def transient(self) -> bool:
        return self.status == THROTTLED_STATUS or self.status >= 500 or self.code in WAITING_CODES


def parse_error(response) -> AzureError:
    """ARM's and run history's error body, whatever of it is present."""
    code, message = "", ""
    try:
        body = response.json()
        error = body.get("error", {}) if isinstance(body, dict) else {}
        if isinstance(error.get("error"), dict):  # run history nests it once more
            error = error["error"]
        code, message = str(error.get("code", "")), str(error.get("message", ""))
    except ValueError:
        message = response.text[:300]
    return AzureError(response.status_code, code or str(response.status_code), message[:1000],
                      retry_after=retry_after(response.headers.get("Retry-After")))


def retry_after(value) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def backend_error(exc: Exception, doing: str) -> BackendError:
    if isinstance(exc, BackendError):
        return exc
    if isinstance(exc, AzureError):
        throttled = exc.status == THROTTLED_STATUS
        return BackendError(f"Azure refused to {doing}: {exc.code}: {exc.message}", permanent=not exc.transient,
                            retry_after=exc.retry_after or (DEFAULT_RETRY_AFTER_SECONDS if throttled else None),
                            waiting=WAITING_CODES.get(exc.code))
    return BackendError(f"Could not reach Azure to {doing}: {exc}")
