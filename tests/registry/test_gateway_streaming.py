"""Uploads and downloads through a real gateway: a session continued by whichever worker process
takes each request, chunked (unknown-length) bodies, short bodies, ranges, and memory that does not
grow with the blob."""

import hashlib
import os
import socket
from pathlib import Path

import pytest
import requests

from tests.support.processes import child_processes

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
MIB = 1024 * 1024


@pytest.fixture
def auth(operator):
    return ("acme", operator.plaintext)


def start(base, auth, name="acme/big"):
    response = requests.post(f"{base}/v2/{name}/blobs/uploads/", auth=auth, timeout=30)
    assert response.status_code == 202, response.text
    return base + response.headers["Location"]


def finish(location, auth, digest):
    return requests.put(location, params={"digest": digest}, auth=auth, timeout=60)


def test_chunked_session_continues_on_any_worker(registry_server, auth):
    data = os.urandom(40 * 64 * 1024)
    location = start(registry_server, auth)
    step = 64 * 1024
    for first in range(0, len(data), step):
        response = requests.patch(location, data=data[first:first + step], auth=auth, timeout=30,
                                  headers={"Content-Range": f"{first}-{first + step - 1}"})
        assert response.status_code == 202, response.text
        location = registry_server + response.headers["Location"]
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    assert finish(location, auth, digest).status_code == 201
    blob = requests.get(f"{registry_server}/v2/acme/big/blobs/{digest}", auth=auth, timeout=30)
    assert blob.content == data
    ranged = requests.get(f"{registry_server}/v2/acme/big/blobs/{digest}", auth=auth, timeout=30,
                          headers={"Range": "bytes=1000-1999"})
    assert ranged.status_code == 206 and ranged.content == data[1000:2000]


def _workers(master_pid: int) -> list[int]:
    return [pid for pid, _state in child_processes(master_pid)]


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def test_streaming_body_of_unknown_length_and_flat_memory(registry_gateway, auth):
    base, master = registry_gateway
    location = start(base, auth)  # also warms both workers' imports before measuring
    requests.get(f"{base}/v2/", auth=auth, timeout=30)
    before = {pid: _peak_rss_kib(pid) for pid in _workers(master.pid)}
    size, hasher = 96 * MIB, hashlib.sha256()

    def body():
        for index in range(size // MIB):
            chunk = hashlib.sha256(str(index).encode()).digest() * (MIB // 32)
            hasher.update(chunk)
            yield chunk

    response = requests.patch(location, data=body(), auth=auth, timeout=120)  # Transfer-Encoding: chunked
    assert response.status_code == 202, response.text
    assert response.headers["Range"] == f"0-{size - 1}"
    digest = "sha256:" + hasher.hexdigest()
    assert finish(base + response.headers["Location"], auth, digest).status_code == 201
    downloaded = hashlib.sha256()
    with requests.get(f"{base}/v2/acme/big/blobs/{digest}", auth=auth, timeout=120, stream=True) as blob:
        for chunk in blob.iter_content(MIB):
            downloaded.update(chunk)
    assert "sha256:" + downloaded.hexdigest() == digest
    growth_mib = max(_peak_rss_kib(pid) - rss for pid, rss in before.items()) / 1024
    assert growth_mib < 32, f"a gateway worker grew by {growth_mib:.0f} MiB for a {size // MIB} MiB blob"


def test_body_shorter_than_its_content_length_is_400(registry_server, auth):
    location = start(registry_server, auth)
    host, port = registry_server.removeprefix("http://").split(":")
    credentials = requests.auth._basic_auth_str(*auth)
    path = location.removeprefix(registry_server)
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {credentials}\r\n"
                     f"Content-Length: 1000\r\nConnection: close\r\n\r\n".encode() + b"x" * 10)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert b"SIZE_INVALID" in answer
    status = requests.get(location, auth=auth, timeout=30)
    assert status.headers["Range"] == "0-0"
