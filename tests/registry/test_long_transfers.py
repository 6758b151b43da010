"""Long uploads through the gateway as the Procfile starts it: a body lasts as long as its bytes flow
(longer than a sync worker's 30 s timeout would allow) while /v1, /healthz and the admin keep
answering from the same worker process; a client that goes silent is cut off after the idle timeout
and its upload can be resumed."""

import hashlib
import os
import socket
import threading
import time

import pytest
import requests

from tests.support.processes import gateway

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
KIB = 1024
IDLE_SECONDS = 4
# Longer than gunicorn's default worker timeout (30 s), which killed sync workers mid-upload.
TRANSFER_SECONDS = 33
CONCURRENT_UPLOADS = 3


@pytest.fixture(scope="module")
def one_worker_gateway(django_db_setup, django_db_blocker, tmp_path_factory):
    """One gateway process (WEB_CONCURRENCY=1): every request below shares its threads."""
    with django_db_blocker.unblock(), gateway(tmp_path_factory.mktemp("gateway"), workers=1,
                                              TRAIN_REGISTRY_BODY_IDLE_SECONDS=IDLE_SECONDS) as started:
        yield started[0]


@pytest.fixture
def auth(operator):
    return ("acme", operator.plaintext)


def start(base, auth, name):
    response = requests.post(f"{base}/v2/{name}/blobs/uploads/", auth=auth, timeout=30)
    assert response.status_code == 202, response.text
    return base + response.headers["Location"]


def slow_body(parts: list[bytes], pause: float):
    for part in parts:
        yield part
        time.sleep(pause)


def slow_upload(base, auth, name, results):
    parts = [os.urandom(64 * KIB) for _ in range(TRANSFER_SECONDS)]
    data = b"".join(parts)
    location = start(base, auth, name)
    started = time.monotonic()
    patched = requests.patch(location, data=slow_body(parts, 1.0), auth=auth, timeout=120)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    finished = requests.put(base + patched.headers.get("Location", ""), params={"digest": digest}, auth=auth,
                            timeout=60)
    pulled = requests.get(f"{base}/v2/{name}/blobs/{digest}", auth=auth, timeout=60)
    results[name] = {"patch": patched.status_code, "seconds": time.monotonic() - started,
                     "put": finished.status_code, "intact": pulled.content == data}


def test_slow_uploads_outlast_the_sync_timeout_while_the_api_answers(one_worker_gateway, auth, operator):
    base, results, latencies = one_worker_gateway, {}, []
    uploads = [threading.Thread(target=slow_upload, args=(base, auth, f"acme/slow{i}", results))
               for i in range(CONCURRENT_UPLOADS)]
    for upload in uploads:
        upload.start()
    probes = [(f"{base}/v1/jobs", operator.http_headers), (f"{base}/healthz", {}), (f"{base}/admin/login/", {})]
    while any(upload.is_alive() for upload in uploads):
        for url, headers in probes:
            sent = time.monotonic()
            response = requests.get(url, headers=headers, timeout=30)
            assert response.status_code == 200, (url, response.status_code)
            latencies.append(time.monotonic() - sent)
        time.sleep(1)
    for upload in uploads:
        upload.join()
    print(f"\nprobe latency during {CONCURRENT_UPLOADS} slow uploads: max {max(latencies):.3f}s "
          f"over {len(latencies)} requests")
    assert len(latencies) >= 3 * len(probes), "the probes ran while the uploads were in flight"
    for name, result in results.items():
        assert result["seconds"] > 30, result
        assert (result["patch"], result["put"], result["intact"]) == (202, 201, True), (name, result)
    assert len(results) == CONCURRENT_UPLOADS


def raw_patch_then_silence(base, auth, path, sent: bytes, declared: int) -> bytes:
    """PATCH declaring `declared` bytes, send only `sent`, then say nothing; the server's answer."""
    host, port = base.removeprefix("http://").split(":")
    credentials = requests.auth._basic_auth_str(*auth)
    with socket.create_connection((host, int(port)), timeout=IDLE_SECONDS * 10) as sock:
        sock.sendall(f"PATCH {path} HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {credentials}\r\n"
                     f"Content-Length: {declared}\r\n\r\n".encode() + sent)
        answer = b""
        while chunk := sock.recv(65536):  # the server closes the connection after answering
            answer += chunk
    return answer


def test_silent_upload_is_cut_off_and_can_be_resumed(one_worker_gateway, auth):
    base = one_worker_gateway
    first, second = os.urandom(300 * KIB), os.urandom(2 * 1024 * KIB)
    location = start(base, auth, "acme/idle")
    response = requests.patch(location, data=first, auth=auth, timeout=30,
                              headers={"Content-Range": f"0-{len(first) - 1}"})
    assert response.status_code == 202, response.text
    location = base + response.headers["Location"]

    started = time.monotonic()
    answer = raw_patch_then_silence(base, auth, location.removeprefix(base), second[:1024 * KIB], len(second))
    waited = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer[:300]
    assert b"BLOB_UPLOAD_INVALID" in answer
    print(f"\nsilent client cut off after {waited:.1f}s (idle timeout {IDLE_SECONDS}s)")

    status = requests.get(location, auth=auth, timeout=30)
    assert status.status_code == 204 and status.headers["Range"] == f"0-{len(first) - 1}"
    resumed = requests.patch(location, data=second, auth=auth, timeout=30,
                             headers={"Content-Range": f"{len(first)}-{len(first) + len(second) - 1}"})
    assert resumed.status_code == 202, resumed.text
    digest = "sha256:" + hashlib.sha256(first + second).hexdigest()
    finished = requests.put(base + resumed.headers["Location"], params={"digest": digest}, auth=auth, timeout=30)
    assert finished.status_code == 201, finished.text
    blob = requests.get(f"{base}/v2/acme/idle/blobs/{digest}", auth=auth, timeout=30)
    assert blob.content == first + second
