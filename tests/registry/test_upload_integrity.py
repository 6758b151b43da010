"""Upload integrity: only the request that owns a session's next offset writes bytes, new blobs are
re-hashed as stored, and damaged blobs are quarantined and repaired by the next honest push."""

import io
import os
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.utils import timezone

from registry.models import Blob, Upload
from registry.store import FilesystemStore, get_store
from tests.registry.conftest import V2, digest_of, error_code
from tests.registry.upload_faults import GatedBody, in_thread, kill_after_write
from tests.support.processes import wait_until

SIZE = 64 * 1024


def patch(v2: V2, location: str, data: bytes, body=None):
    """PATCH `data` at byte 0 of the session; `body` (a GatedBody) streams it instead of the client."""
    extra = {"HTTP_CONTENT_RANGE": f"0-{len(data) - 1}"}
    if body is not None:
        extra.update({"CONTENT_LENGTH": str(len(data)), "wsgi.input": body})
        return v2.request("PATCH", location, b"", **extra)
    return v2.request("PATCH", location, data, **extra)


def held(v2: V2, location: str, data: bytes, pool):
    """Start a PATCH of `data` that pauses half way; returns (future, body) once it has paused or ended."""
    body = GatedBody(data, len(data) // 2)
    future = in_thread(pool, patch, v2, location, data, body)
    wait_until(lambda: body.paused.is_set() or future.done(), timeout=60, message="the PATCH to pause")
    return future, body


def race(caller, location: str, first: bytes, second: bytes, order: str) -> dict[int, bytes]:
    """Two PATCHes of the same range of one session, overlapping in time; {status: body sent}."""
    v2_first, v2_second = V2(caller), V2(caller)
    with ThreadPoolExecutor(2) as pool:
        first_future, first_body = held(v2_first, location, first, pool)
        if order == "second_ends_first":
            second_response = patch(v2_second, location, second)
            first_body.go.set()
        else:  # first_ends_first: both are mid-body when the first is let go
            second_future, second_body = held(v2_second, location, second, pool)
            first_body.go.set()
            first_future.result(timeout=60)
            second_body.go.set()
            second_response = second_future.result(timeout=60)
        first_response = first_future.result(timeout=60)
    return {first_response.status_code: first, second_response.status_code: second}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("order", ["second_ends_first", "first_ends_first"])
def test_two_patches_racing_on_one_session_store_the_winners_bytes(operator, order):
    v2 = V2(operator)
    location = v2.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    first, second = os.urandom(SIZE), os.urandom(SIZE)
    outcome = race(operator, location, first, second, order)
    assert sorted(outcome) == [202, 416], "exactly one of two racing requests may write"
    winner = outcome[202]
    assert Upload.objects.get().offset == len(winner)
    assert v2.request("PUT", location, query={"digest": digest_of(winner)}).status_code == 201
    assert v2.get(f"/v2/acme/app/blobs/{digest_of(winner)}").getvalue() == winner


@pytest.mark.django_db(transaction=True)
def test_racing_patches_cannot_poison_a_layer_another_account_pushes_later(operator, outsider):
    layer = os.urandom(SIZE)
    attacker = V2(outsider)
    location = attacker.request("POST", "/v2/globex/app/blobs/uploads/")["Location"]
    # The attack: junk held mid-stream while the real layer races past it on the same session, then
    # a PUT naming the real layer's digest.
    race(outsider, location, os.urandom(SIZE), layer, "second_ends_first")
    attacker.request("PUT", location, query={"digest": digest_of(layer)})

    honest = V2(operator)
    assert honest.push_blob("acme/app", layer) == digest_of(layer)
    assert honest.get(f"/v2/acme/app/blobs/{digest_of(layer)}").getvalue() == layer
    if attacker.head(f"/v2/globex/app/blobs/{digest_of(layer)}").status_code == 200:
        assert attacker.get(f"/v2/globex/app/blobs/{digest_of(layer)}").getvalue() == layer


@pytest.mark.django_db(transaction=True)
def test_a_request_that_stalls_past_its_lease_loses_the_session_and_writes_no_more(operator, settings):
    settings.TRAIN_REGISTRY_UPLOAD_LEASE_SECONDS = 1
    v2 = V2(operator)
    location = v2.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    stalled, taker = os.urandom(SIZE), os.urandom(SIZE)
    with ThreadPoolExecutor(1) as pool:
        future, body = held(V2(operator), location, stalled, pool)
        wait_until(lambda: not Upload.objects.filter(lease_expires_at__gt=timezone.now()).exists(), timeout=30,
                   message="the stalled request's lease to run out")
        assert patch(V2(operator), location, taker).status_code == 202, "the session was taken over"
        body.go.set()
        late = future.result(timeout=60)
    assert late.status_code == 416 and error_code(late) == "RANGE_INVALID"
    assert v2.request("PUT", location, query={"digest": digest_of(taker)}).status_code == 201
    assert v2.get(f"/v2/acme/app/blobs/{digest_of(taker)}").getvalue() == taker


def test_a_session_whose_writer_died_continues_at_the_committed_offset(v2_operator, monkeypatch):
    first, lost, second = os.urandom(100), os.urandom(300), os.urandom(300)
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    assert v2_operator.request("PATCH", location, first, HTTP_CONTENT_RANGE="0-99").status_code == 202
    kill_after_write(monkeypatch, FilesystemStore, v2_operator, location, lost, "100-399")
    blocked = v2_operator.request("PATCH", location, second, HTTP_CONTENT_RANGE="100-399")
    assert blocked.status_code == 416 and blocked["Range"] == "0-99", "the dead request's lease still holds"
    Upload.objects.update(lease_expires_at=timezone.now())  # the lease runs out
    assert v2_operator.request("PATCH", location, second, HTTP_CONTENT_RANGE="100-399").status_code == 202
    digest = digest_of(first + second)
    assert v2_operator.request("PUT", location, query={"digest": digest}).status_code == 201
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest}").getvalue() == first + second


def test_bytes_a_writer_changed_after_its_lease_was_taken_over_are_refused(v2_operator, monkeypatch):
    data = os.urandom(SIZE)
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    kill_after_write(monkeypatch, FilesystemStore, v2_operator, location, os.urandom(SIZE), "0-65535")
    Upload.objects.update(lease_expires_at=timezone.now())  # its lease runs out; the session is taken over
    assert v2_operator.request("PATCH", location, data, HTTP_CONTENT_RANGE="0-65535").status_code == 202
    # The first writer was not dead after all: it writes on, into bytes the second one committed.
    upload_file = get_store().root / "uploads" / str(Upload.objects.get().pk)
    upload_file.write_bytes(os.urandom(SIZE))
    response = v2_operator.request("PUT", location, query={"digest": digest_of(data)})
    assert response.status_code == 400 and error_code(response) == "DIGEST_INVALID"
    assert not Blob.objects.exists() and not Upload.objects.exists()
    assert v2_operator.head(f"/v2/acme/app/blobs/{digest_of(data)}").status_code == 404


def blob_file(digest: str):
    return get_store()._blob_path(digest)


def test_a_stray_file_under_a_new_digest_is_replaced_by_the_verified_push(v2_operator):
    data = os.urandom(SIZE)
    stray = blob_file(digest_of(data))
    stray.parent.mkdir(parents=True, exist_ok=True)
    stray.write_bytes(b"not the blob")  # left by an earlier, damaged store; no Blob row
    assert v2_operator.push_blob("acme/app", data)
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest_of(data)}").getvalue() == data


def test_registry_verify_quarantines_a_tampered_blob_and_a_push_repairs_it(v2_operator, v2_outsider):
    good, data = os.urandom(1000), os.urandom(SIZE)
    v2_operator.push_blob("acme/app", good)
    v2_operator.push_blob("acme/app", data)
    v2_outsider.push_blob("globex/app", data)
    digest = digest_of(data)
    blob_file(digest).write_bytes(os.urandom(SIZE))  # same size, other bytes

    dry = io.StringIO()
    call_command("registry_verify", "--dry-run", stdout=dry)
    assert f"damaged {digest}" in dry.getvalue()
    assert not Blob.objects.filter(quarantined_at__isnull=False).exists()

    out = io.StringIO()
    call_command("registry_verify", stdout=out)
    assert f"quarantined {digest}" in out.getvalue() and "checked 2 blobs, 1 quarantined" in out.getvalue()
    assert (get_store().root / "quarantine" / "sha256" / digest.split(":")[1]).is_file(), "kept for inspection"
    for v2, name in ((v2_operator, "acme/app"), (v2_outsider, "globex/app")):
        response = v2.get(f"/v2/{name}/blobs/{digest}")
        assert response.status_code == 404 and error_code(response) == "BLOB_UNKNOWN"
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest_of(good)}").getvalue() == good

    # The next honest push of that digest, from any account, puts correct bytes back for everyone.
    v2_outsider.push_blob("globex/app", data)
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest}").getvalue() == data
    again = io.StringIO()
    call_command("registry_verify", stdout=again)
    assert "checked 2 blobs, 0 quarantined" in again.getvalue()


def test_registry_verify_quarantines_a_missing_blob_file(v2_operator):
    data = os.urandom(100)
    v2_operator.push_blob("acme/app", data)
    blob_file(digest_of(data)).unlink()
    out = io.StringIO()
    call_command("registry_verify", stdout=out)
    assert "missing from the store" in out.getvalue()
    assert v2_operator.head(f"/v2/acme/app/blobs/{digest_of(data)}").status_code == 404
    v2_operator.push_blob("acme/app", data)
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest_of(data)}").getvalue() == data


def test_a_manifest_cannot_name_a_quarantined_blob(v2_operator):
    _, document = v2_operator.push_image("acme/app", "v1")
    layer = document["layers"][0]["digest"]
    blob_file(layer).write_bytes(b"x" * document["layers"][0]["size"])
    call_command("registry_verify", stdout=io.StringIO())
    document["annotations"] = {"again": "yes"}
    response = v2_operator.push_manifest("acme/app", "v2", document)
    assert response.status_code == 400 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"
