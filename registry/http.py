"""Request and response helpers shared by the /v2 views: bodies, ranges, pages."""

import math
import re
from contextlib import contextmanager
from urllib.parse import urlencode

from django.conf import settings
from django.db import connection
from django.db.models.functions import Collate
from django.http import HttpResponse
from django.http.request import UnreadablePostError

from registry.errors import RegistryError
from registry.socket_body import socket_body
from registry.store import CHUNK_BYTES

CONTENT_RANGE_RE = re.compile(r"\A(?:bytes )?(\d{1,19})-(\d{1,19})\Z")
RANGE_RE = re.compile(r"\Abytes=(\d{0,19})-(\d{0,19})\Z")


def declared_length(request) -> int | None:
    raw = request.META.get("CONTENT_LENGTH")
    if raw in (None, ""):
        return None
    if not raw.isdigit():
        raise RegistryError("SIZE_INVALID", "Content-Length must be a whole number",
                            detail={"Content-Length": raw[:40]})
    return int(raw)


def has_body(request) -> bool:
    length = declared_length(request)
    return bool(length) or (length is None and bool(request.META.get("wsgi.input_terminated")))


@contextmanager
def idle_timeout(request):
    """Reads from the client socket give up after TRAIN_REGISTRY_BODY_IDLE_SECONDS without a byte.
    The gateway's threads otherwise wait on a silent client forever (gthread workers have no
    per-request timeout, decision 0030). A body that keeps flowing is never cut off. The socket's
    timeout is restored afterwards; gunicorn makes it blocking again for the next request anyway."""
    sock = request.META.get("gunicorn.socket")
    if sock is None:  # Django's test client, or another server
        yield
        return
    idle = settings.TRAIN_REGISTRY_BODY_IDLE_SECONDS
    previous = sock.gettimeout()
    sock.settimeout(idle)
    try:
        yield
    except (TimeoutError, UnreadablePostError) as exc:
        # Django reports a failed read of the request body as UnreadablePostError from the OSError.
        if not isinstance(exc, TimeoutError) and not isinstance(exc.__cause__, TimeoutError):
            raise
        raise RegistryError("BLOB_UPLOAD_INVALID", f"no body bytes arrived for {idle} s; resume the upload",
                            status=408) from exc
    finally:
        sock.settimeout(previous)


def release_database_connection(length: int | None) -> None:
    """A body that may take long (hours at a few MB/s) is read without holding a database
    connection: N slow uploads do not pin N connections, and the write after the body gets a fresh
    connection rather than one the server or a firewall may have dropped meanwhile."""
    if (length is None or length > CHUNK_BYTES) and not connection.in_atomic_block:
        connection.close()


def _short_body(length: int, received: int) -> RegistryError:
    return RegistryError("SIZE_INVALID", "the body is shorter than its Content-Length",
                         detail={"Content-Length": length, "received": received})


def body_chunks(request):
    """The request body in bounded chunks, never whole. With Content-Length, exactly that many bytes
    (a shorter body is SIZE_INVALID); without it (a chunked, streaming PATCH), until the end of the
    stream, which gunicorn marks as terminated. A client silent for longer than the idle timeout is
    cut off with 408; the upload keeps the offset it had before the request.

    Under gunicorn the body comes straight from the socket in blocks of up to 1 MiB (registry/
    socket_body.py): each chunk is then a memoryview valid only until the next one is asked for."""
    length = declared_length(request)
    if length is None and not request.META.get("wsgi.input_terminated"):
        return
    release_database_connection(length)
    with idle_timeout(request):
        raw = socket_body(request.META) if length != 0 else None
        if raw is not None:
            yield from raw
            if length is not None and raw.received < length:
                raise _short_body(length, raw.received)
            return
        if length is None:
            stream = request.META["wsgi.input"]
            while data := stream.read(CHUNK_BYTES):
                yield data
            return
        remaining = length
        while remaining > 0:
            data = request.read(min(CHUNK_BYTES, remaining))
            if not data:
                raise _short_body(length, length - remaining)
            remaining -= len(data)
            yield data


def body_bytes(request, *, limit: int) -> bytes:
    """A small body (a manifest), refused with 413 past `limit` without reading it all."""
    length = declared_length(request)
    if length is not None and length > limit:
        raise RegistryError("SIZE_INVALID", f"manifests are limited to {limit} bytes", status=413)
    data = bytearray()
    for chunk in body_chunks(request):
        data += chunk
        if len(data) > limit:
            raise RegistryError("SIZE_INVALID", f"manifests are limited to {limit} bytes", status=413)
    return bytes(data)


def content_range(request) -> tuple[int, int] | None:
    raw = request.headers.get("Content-Range")
    if raw is None:
        return None
    match = CONTENT_RANGE_RE.match(raw.strip())
    if not match or int(match[2]) < int(match[1]):
        raise RegistryError("RANGE_INVALID", "Content-Range must be <start>-<end>", detail={"Content-Range": raw[:80]})
    return int(match[1]), int(match[2])


def byte_range(request, size: int) -> tuple[int, int] | None:
    """(start, length) for a satisfiable single `Range: bytes=` request, None for a full body;
    416 for anything unsatisfiable or malformed (multiple ranges are not supported)."""
    raw = request.headers.get("Range")
    if raw is None:
        return None
    match = RANGE_RE.match(raw.strip())
    unsatisfiable = RegistryError("RANGE_INVALID", "requested range not satisfiable",
                                  headers={"Content-Range": f"bytes */{size}"})
    if not match or (match[1] == "" and match[2] == ""):
        raise unsatisfiable
    if match[1] == "":
        length = min(int(match[2]), size)
        if length == 0:
            raise unsatisfiable
        return size - length, length
    start = int(match[1])
    end = min(int(match[2]), size - 1) if match[2] else size - 1
    if start >= size or end < start:
        raise unsatisfiable
    return start, end - start + 1


def empty(status: int, headers: dict) -> HttpResponse:
    response = HttpResponse(status=status)
    for name, value in headers.items():
        response[name] = value
    response.setdefault("Content-Length", "0")
    return response


def page_size(request) -> int | None:
    """`n` clamped to [0, TRAIN_REGISTRY_MAX_PAGE]; None when absent. Non-numbers are 400."""
    raw = request.GET.get("n")
    if raw is None or raw == "":
        return None
    try:
        value = float(raw) if not raw.lstrip("-").isdigit() else int(raw)
    except ValueError as exc:
        raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": raw[:40]}) from exc
    if isinstance(value, float) and not math.isfinite(value):
        raise RegistryError("PAGINATION_NUMBER_INVALID", detail={"n": raw[:40]})
    return int(max(0, min(value, settings.TRAIN_REGISTRY_MAX_PAGE)))


def binary(field: str):
    """`field` compared byte by byte: the spec's lexical order, whatever the database collation."""
    return Collate(field, "C" if connection.vendor == "postgresql" else "BINARY")


def paginate(queryset, field: str, request, *, path: str):
    """(values, Link header or "") over `queryset`, ordered by `field` bytewise, after `last`."""
    n = page_size(request)
    last = request.GET.get("last", "")
    rows = queryset.annotate(_sort=binary(field)).order_by("_sort")
    if last:
        rows = rows.filter(_sort__gt=last)
    limit = settings.TRAIN_REGISTRY_MAX_PAGE if n is None else n
    values = list(rows.values_list(field, flat=True)[: limit + 1]) if limit else []
    link = ""
    if len(values) > limit:
        values = values[:limit]
        link = f'<{path}?{urlencode({"n": limit, "last": values[-1]})}>; rel="next"'
    return values, link
