"""AWS errors as Train sees them: which are worth retrying, and the BackendError for each."""

from backends.base import WAITING_CAPACITY, WAITING_QUOTA

# Throttled requests were refused, not applied; botocore backs off and retries them first.
THROTTLING_CODES = frozenset({"ThrottlingException", "Throttling", "TooManyRequestsException",
                              "RequestLimitExceeded", "SlowDown"})
# Refusals that resolve by themselves as other jobs finish: the job waits PENDING, showing AWS's
# message, instead of failing. ResourceLimitExceeded is an account quota (e.g. instances of a type);
# CapacityError is SageMaker out of the instance type in the region.
WAITING_CODES = {"ResourceLimitExceeded": WAITING_QUOTA, "CapacityError": WAITING_CAPACITY,
                 "InsufficientCapacityError": WAITING_CAPACITY}
# Worth retrying later although AWS answered 4xx: expired assumed-role credentials are refreshed on
# the next call.
TRANSIENT_CODES = THROTTLING_CODES | set(WAITING_CODES) | {"ExpiredToken", "ExpiredTokenException"}
# How long a caller should leave a throttled account alone.
THROTTLED_RETRY_AFTER_SECONDS = 30.0


def error_code(exc) -> str:
    return exc.response.get("Error", {}).get("Code", "")


def http_status(exc) -> int:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)


def is_not_found(exc) -> bool:
    # DescribeTrainingJob answers ValidationException "Requested resource not found" (the API model
    # says ResourceNotFound); accept both.
    message = exc.response.get("Error", {}).get("Message", "").lower()
    return error_code(exc) in ("ResourceNotFound", "ResourceNotFoundException") or (
        error_code(exc) == "ValidationException" and "not found" in message)


def backend_error(exc, doing: str):
    """A boto3/botocore exception as a BackendError: permanent when AWS rejected the request itself."""
    from botocore.exceptions import ClientError

    from backends.base import BackendError

    if isinstance(exc, ClientError):
        code = error_code(exc)
        message = exc.response.get("Error", {}).get("Message", "") or str(exc)
        return BackendError(
            f"AWS refused to {doing}: {code}: {message}",
            permanent=http_status(exc) < 500 and code not in TRANSIENT_CODES,
            retry_after=THROTTLED_RETRY_AFTER_SECONDS if code in THROTTLING_CODES else None,
            waiting=WAITING_CODES.get(code),
        )
    return BackendError(f"Could not reach AWS to {doing}: {exc}")
