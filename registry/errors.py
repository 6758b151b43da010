"""The distribution spec's error body, `{"errors": [{"code", "message", "detail"}]}`, for every failure."""

import functools
import logging

from django.http import JsonResponse

log = logging.getLogger(__name__)

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")

# code → (HTTP status, default message). Codes are those of the OCI spec plus the Docker extras
# clients still recognise (reference: registry.md §1.4).
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
}


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


def registry_view(view):
    """Every /v2 answer carries the API version header; every RegistryError becomes spec JSON."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            response = view(request, *args, **kwargs)
        except RegistryError as exc:
            return exc.response(head=request.method == "HEAD")
        response[API_VERSION_HEADER[0]] = API_VERSION_HEADER[1]
        return response

    wrapper.csrf_exempt = True  # token-authenticated API; clients never hold a CSRF cookie
    return wrapper
