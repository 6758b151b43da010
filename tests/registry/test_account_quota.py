"""Per-account limits on the registry: stored bytes (quota) and unfinished upload sessions."""

import io
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from registry.models import Blob, Upload
from registry.services import account_stored_bytes
from registry.store import FilesystemStore, get_store
from tests.registry.conftest import V2, digest_of, error_code
from tests.registry.upload_faults import GatedBody, in_thread, kill_after_write
from tests.support.concurrency import run_at_once
from tests.support.processes import wait_until

MIB = 1024 * 1024

pytestmark = pytest.mark.django_db


def push(v2, name, data):
    return v2.request("POST", f"/v2/{name}/blobs/uploads/", data, query={"digest": digest_of(data)})


def test_upload_past_the_quota_is_denied_and_stores_nothing(v2_operator, v2_outsider, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 1000
    assert push(v2_operator, "acme/app", b"a" * 600).status_code == 201
    over = push(v2_operator, "acme/app", b"b" * 600)
    assert over.status_code == 403 and error_code(over) == "DENIED"
    assert not Blob.objects.filter(digest=digest_of(b"b" * 600)).exists()
    assert v2_operator.head(f"/v2/acme/app/blobs/{digest_of(b'b' * 600)}").status_code == 404
    # Quotas are per account: another account's pushes are not affected.
    assert push(v2_outsider, "globex/app", b"c" * 600).status_code == 201


def test_chunked_upload_is_stopped_at_the_quota(v2_operator, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 1000
    start = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")
    location = start["Location"]
    first = v2_operator.request("PATCH", location, b"x" * 800, HTTP_CONTENT_RANGE="0-799")
    assert first.status_code == 202
    second = v2_operator.request("PATCH", location, b"y" * 300, HTTP_CONTENT_RANGE="800-1099")
    assert second.status_code == 403 and error_code(second) == "DENIED"
    assert Upload.objects.get().offset == 800, "the refused chunk was not recorded"


def test_quota_zero_means_no_quota(v2_operator, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 0
    assert push(v2_operator, "acme/app", b"a" * 5000).status_code == 201


def test_open_upload_sessions_are_capped_per_account(v2_operator, v2_outsider, settings):
    settings.TRAIN_REGISTRY_MAX_OPEN_UPLOADS = 2
    sessions = [v2_operator.request("POST", "/v2/acme/app/blobs/uploads/") for _ in range(2)]
    assert [s.status_code for s in sessions] == [202, 202]
    third = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")
    assert third.status_code == 429 and error_code(third) == "TOOMANYREQUESTS"
    assert v2_outsider.request("POST", "/v2/globex/app/blobs/uploads/").status_code == 202
    assert v2_operator.request("DELETE", sessions[0]["Location"]).status_code == 204
    assert v2_operator.request("POST", "/v2/acme/app/blobs/uploads/").status_code == 202


def parallel(caller, count: int, request):
    """`request(v2)` from `count` threads at once, each with its own client and connection; statuses."""
    clients = [V2(caller) for _ in range(count)]
    for v2 in clients:
        v2.token("repository:acme/app:pull,push,delete")  # fetched beforehand, so the requests start together
    it = iter(clients)
    lock = threading.Lock()

    def one():
        with lock:
            v2 = next(it)
        return request(v2).status_code

    return sorted(run_at_once(one, count))


def gated_push(caller, body: GatedBody):
    v2 = V2(caller)
    return v2.request("POST", "/v2/acme/app/blobs/uploads/", b"", query={"digest": digest_of(body.data)},
                      CONTENT_LENGTH=str(len(body.data)), **{"wsgi.input": body})


@pytest.mark.django_db(transaction=True)
def test_parallel_uploads_cannot_pass_the_quota_together(operator, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = MIB
    # Four pushes of 600 kB, each held half way until all four are in flight (or refused).
    bodies = [GatedBody(os.urandom(600_000), 300_000) for _ in range(4)]
    with ThreadPoolExecutor(4) as pool:
        futures = [in_thread(pool, gated_push, operator, body) for body in bodies]
        wait_until(lambda: all(b.paused.is_set() or f.done() for b, f in zip(bodies, futures, strict=True)),
                   timeout=60,
                   message="every push to be in flight or refused")
        for body in bodies:
            body.go.set()
        statuses = sorted(future.result(timeout=60).status_code for future in futures)
    assert statuses == [201, 403, 403, 403]
    assert account_stored_bytes(account_id="acme") <= MIB
    assert sum(Blob.objects.values_list("size", flat=True)) == 600_000
    assert not Upload.objects.exists(), "refused pushes closed their sessions"


@pytest.mark.django_db(transaction=True)
def test_parallel_session_starts_respect_the_cap(operator, settings):
    settings.TRAIN_REGISTRY_MAX_OPEN_UPLOADS = 5
    statuses = parallel(operator, 16, lambda v2: v2.request("POST", "/v2/acme/app/blobs/uploads/"))
    assert statuses == [202] * 5 + [429] * 11
    assert Upload.objects.count() == 5


def test_a_refused_single_request_push_leaves_no_session(v2_operator, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 1000
    assert push(v2_operator, "acme/app", b"a" * 600).status_code == 201
    files_before = set((get_store().root / "uploads").iterdir())
    assert push(v2_operator, "acme/app", b"b" * 600).status_code == 403
    assert not Upload.objects.exists()
    assert set((get_store().root / "uploads").iterdir()) == files_before, "its bytes are gone too"


def test_a_put_refused_by_the_quota_closes_its_session(v2_operator, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 1000
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    assert v2_operator.request("PATCH", location, b"x" * 500, HTTP_CONTENT_RANGE="0-499").status_code == 202
    refused = v2_operator.request("PUT", location, b"y" * 600, query={"digest": digest_of(b"x" * 500 + b"y" * 600)})
    assert refused.status_code == 403 and error_code(refused) == "DENIED"
    assert v2_operator.get(location).status_code == 404
    assert not Upload.objects.exists()
    assert push(v2_operator, "acme/app", b"z" * 900).status_code == 201, "its 500 bytes no longer count"


def test_bytes_a_killed_request_left_count_until_the_session_ends(v2_operator, settings, monkeypatch):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 1000
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    kill_after_write(monkeypatch, FilesystemStore, v2_operator, location, b"k" * 800, "0-799")
    assert Upload.objects.get().offset == 0, "the killed request never committed"
    over = push(v2_operator, "acme/app", b"p" * 600)
    assert over.status_code == 403, "800 bytes on disk still count against the quota"
    assert v2_operator.request("DELETE", location).status_code == 204
    assert push(v2_operator, "acme/app", b"p" * 600).status_code == 201


def test_a_streaming_patch_is_stopped_at_the_quota(v2_operator, settings):
    settings.TRAIN_REGISTRY_ACCOUNT_QUOTA_BYTES = 1000
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    body = io.BytesIO(b"s" * 1500)  # no Content-Length: a chunked request body, as skopeo sends
    response = v2_operator.request("PATCH", location, b"", **{"wsgi.input": body, "wsgi.input_terminated": True})
    assert response.status_code == 403 and error_code(response) == "DENIED"
    assert Upload.objects.get().offset == 0
    assert account_stored_bytes(account_id="acme") <= 1000
