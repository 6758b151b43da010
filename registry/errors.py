"""The distribution spec's error body, `{"errors": [{"code", "message", "detail"}]}`, for every failure."""

import functools
import logging
import re

from django.http import JsonResponse

log = logging.getLogger(__name__)

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")

# code → (HTTP status, default message). Codes are those of the OCI spec plus the Docker extras
# clients still recognise.
CODES = {
    "BLOB_UNKNOWN": (404, "blob unknown to registry"),
    "BLOB_UPLOAD_INVALID": (400, "blob upload invalid"),
    "BLOB_UPLOAD_UNKNOWN": (404, "blob upload unknown to registry"),
    "DIGEST_INVALID": (400, "provided digest did not match uploaded content"),
    "MANIFEST_BLOB_UNKNOWN": (400, "manifest references a blob or manifest unknown to this repository"),
    "MANIFEST_INVALID": (400, "manifest invalid"),
    "MANIFEST_UNKNOWN": (404, "manifest unknown"),
    "NAME_INVALID": (400, "invalid repository name"),
    "NAME_UNKNOWN": (404, "repository name not known to registry"),
    "SIZE_INVALID": (400, "provided length did not match content length"),
    "TAG_INVALID": (400, "invalid tag"),
    "UNAUTHORIZED": (401, "authentication required"),
    "DENIED": (403, "requested access to the resource is denied"),
    "UNSUPPORTED": (405, "the operation is unsupported"),
    "TOOMANYREQUESTS": (429, "too many requests"),
    "RANGE_INVALID": (416, "invalid content range"),
    "PAGINATION_NUMBER_INVALID": (400, "invalid number of results requested"),
    "UNAVAILABLE": (503, "service unavailable"),
}

# Which code a query parameter with unsafe text (NUL, controls, lone surrogates) is refused with; any
# other parameter gets UNSUPPORTED, which the spec gives to "an invalid set of parameters".
QUERY_CODES = {"digest": "DIGEST_INVALID", "mount": "DIGEST_INVALID", "from": "NAME_INVALID",
               "n": "PAGINATION_NUMBER_INVALID", "last": "PAGINATION_NUMBER_INVALID"}
# NUL and other C0 controls but tab, DEL, and lone surrogates: text no column, key or header may hold.
UNSAFE_TEXT_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


class RegistryError(Exception):
    """Raised anywhere below a /v2 view; `registry_view` turns it into the spec's error response."""

    def __init__(self, code: str, message: str = "", *, detail=None, status: int | None = None, headers=None):
        default_status, default_message = CODES[code]
        super().__init__(message or default_message)
        self.code = code
        self.message = message or default_message
        self.detail = detail
        self.status = status or default_status
        self.headers = headers or {}

    def response(self, *, head: bool = False):
        body = {"errors": [{"code": self.code, "message": self.message, "detail": self.detail}]}
        response = JsonResponse(body, status=self.status)
        if head:
            # A HEAD answer carries the headers of the GET, never a body.
            response.content = b""
        for name, value in self.headers.items():
            response[name] = value
        response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        return response


def _store_errors() -> tuple[type[Exception], ...]:
    """What a failing blob store raises: OSError from the filesystem, botocore's errors from S3."""
    try:
        from botocore.exceptions import BotoCoreError, ClientError
    except ImportError:  # a filesystem-only install without the AWS SDK
        return (OSError,)
    return (OSError, BotoCoreError, ClientError)


def _query_check(request) -> None:
    """Refuse unsafe text in any query parameter before a view can put it in a query or a key."""
    for key, values in request.GET.lists():
        if UNSAFE_TEXT_RE.search(key) or any(UNSAFE_TEXT_RE.search(value) for value in values):
            name = UNSAFE_TEXT_RE.sub("?", key)[:40]
            raise RegistryError(QUERY_CODES.get(key, "UNSUPPORTED"), f"the query parameter {name!r} holds "
                                "a NUL, a control character or invalid UTF-8", detail={"parameter": name},
                                status=400)


def registry_view(view):
    """Every /v2 answer carries the API version header; every RegistryError becomes spec JSON, and so
    does a failing blob store (503 UNAVAILABLE, logged), never an HTML error page."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            _query_check(request)
            response = view(request, *args, **kwargs)
        except RegistryError as exc:
            return exc.response(head=request.method == "HEAD")
        except _store_errors() as exc:
            log.exception("blob store or stream I/O failed during %s %s", request.method, request.path)
            return RegistryError("UNAVAILABLE", "the blob store is unavailable; try again later",
                                 detail={"error": type(exc).__name__}, headers={"Retry-After": "30"}).response(
                head=request.method == "HEAD")
        response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        return response

    wrapper.csrf_exempt = True  # token-authenticated API; clients never hold a CSRF cookie
    return wrapper
