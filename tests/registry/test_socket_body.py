"""Upload bodies read straight from the gateway's socket (registry/socket_body.py), byte for byte on
the wire: chunk framing as clients really send it, a next request sent right behind a body on the
same connection, and framing errors answered with 400 and a closed connection, the upload untouched."""

import hashlib
import os
import re
import socket

import pytest
import requests

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
KIB = 1024


@pytest.fixture
def auth(operator):
    return ("acme", operator.plaintext)


def start(base, auth):
    response = requests.post(f"{base}/v2/acme/wire/blobs/uploads/", auth=auth, timeout=30)
    assert response.status_code == 202, response.text
    return response.headers["Location"]


def chunked(parts, *, extension=b"", trailer=b"") -> bytes:
    framed = b"".join(b"%x%s\r\n%s\r\n" % (len(part), extension, part) for part in parts)
    return framed + b"0\r\n" + trailer + b"\r\n"


def head(base, auth, method, path, *, headers=()):
    host = base.removeprefix("http://")
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}",
             f"Authorization: {requests.auth._basic_auth_str(*auth)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def exchange(base, payload: bytes, *, half_close=False) -> list[tuple[int, bytes]]:
    """Send `payload` as it is on one connection; read until the server closes it. Returns every
    response's (status, raw bytes) in order."""
    host, port = base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        answer = b""
        while data := sock.recv(65536):
            answer += data
    starts = [m.start() for m in re.finditer(rb"HTTP/1\.1 \d{3} ", answer)]
    return [(int(answer[s + 9:s + 12]), answer[s:e]) for s, e in zip(starts, [*starts[1:], len(answer)], strict=True)]


def offset(base, auth, location) -> str:
    return requests.get(base + location, auth=auth, timeout=30).headers["Range"]


def put(base, auth, location, data):
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return requests.put(base + location, params={"digest": digest}, auth=auth, timeout=60)


def test_skopeo_sized_chunks_with_extensions_and_a_trailer_then_a_pipelined_request(registry_server, auth):
    # 32 KiB chunks as Go clients write them, one odd-sized, spanning several 1 MiB blocks.
    data = os.urandom(3 * 1024 * KIB + 12345)
    parts = [data[i:i + 32 * KIB] for i in range(0, len(data), 32 * KIB)]
    location = start(registry_server, auth)
    body = chunked(parts, extension=b";name=value", trailer=b"X-Checksum: none\r\n")
    payload = (head(registry_server, auth, "PATCH", location, headers=["Transfer-Encoding: chunked"]) + body
               + head(registry_server, auth, "GET", location, headers=["Connection: close"]))
    answers = exchange(registry_server, payload)
    assert [status for status, _ in answers] == [202, 204]
    assert f"Range: 0-{len(data) - 1}".encode() in answers[1][1]  # the request behind the body was read intact
    assert put(registry_server, auth, location, data).status_code == 201
    blob = requests.get(f"{registry_server}/v2/acme/wire/blobs/sha256:{hashlib.sha256(data).hexdigest()}",
                        auth=auth, timeout=60)
    assert blob.content == data


@pytest.mark.parametrize("sizes", [
    [1024 * KIB - 1, 2, 1024 * KIB + 7],     # around the 1 MiB block boundary
    [200 * KIB, 1, 64 * KIB, 64 * KIB - 1],  # large chunks read straight into the block, and tiny ones
])
def test_chunk_sizes_around_block_and_read_boundaries(registry_server, auth, sizes):
    data = os.urandom(sum(sizes))
    parts, at = [], 0
    for size in sizes:
        parts.append(data[at:at + size])
        at += size
    location = start(registry_server, auth)
    payload = head(registry_server, auth, "PATCH", location,
                   headers=["Transfer-Encoding: chunked", "Connection: close"]) + chunked(parts)
    assert [status for status, _ in exchange(registry_server, payload)] == [202]
    assert put(registry_server, auth, location, data).status_code == 201


def test_sized_body_then_a_pipelined_request(registry_server, auth):
    data = os.urandom(2 * 1024 * KIB + 3)
    location = start(registry_server, auth)
    payload = (head(registry_server, auth, "PATCH", location, headers=[f"Content-Length: {len(data)}"]) + data
               + head(registry_server, auth, "GET", location, headers=["Connection: close"]))
    answers = exchange(registry_server, payload)
    assert [status for status, _ in answers] == [202, 204]
    assert put(registry_server, auth, location, data).status_code == 201


@pytest.mark.parametrize(("framing", "why"), [
    (b"zz\r\nabc\r\n0\r\n\r\n", "invalid chunk size"),
    (b"3\r\nabcXY0\r\n\r\n", "not followed by CRLF"),
    (b"3;bad ext\r\nabc\r\n0\r\n\r\n", "invalid chunk extension"),
    (b"1" * 9000 + b"\r\n", "longer than"),
    (b"11111111111111111\r\n", "invalid chunk size"),  # past 2^64
])
def test_bad_framing_is_400_and_the_upload_keeps_its_offset(registry_server, auth, framing, why):
    location = start(registry_server, auth)
    first = b"x" * 1000
    assert requests.patch(registry_server + location, data=first, auth=auth, timeout=30).status_code == 202
    payload = head(registry_server, auth, "PATCH", location, headers=["Transfer-Encoding: chunked"]) + framing
    # The connection is closed after the answer, even though the client asked to keep it.
    answers = exchange(registry_server, payload + head(registry_server, auth, "GET", location))
    assert [status for status, _ in answers] == [400]
    assert b"BLOB_UPLOAD_INVALID" in answers[0][1] and why.encode() in answers[0][1]
    assert offset(registry_server, auth, location) == "0-999"


def test_body_cut_off_mid_chunk_leaves_the_offset(registry_server, auth):
    location = start(registry_server, auth)
    payload = head(registry_server, auth, "PATCH", location, headers=["Transfer-Encoding: chunked"])
    answers = exchange(registry_server, payload + b"8000\r\n" + b"y" * 5000, half_close=True)
    assert [status for status, _ in answers] == [400]
    assert b"ended before its last chunk" in answers[0][1]
    assert offset(registry_server, auth, location) == "0-0"
    assert put(registry_server, auth, location, b"").status_code == 201  # the session still works
