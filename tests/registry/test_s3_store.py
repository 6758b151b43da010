"""The s3 blob store against an S3-compatible endpoint (moto in server mode): chunked uploads across
part boundaries, digest checks, ranged reads, mounts and upload cleanup."""

import hashlib
import io
import os

import pytest
from django.core.management import call_command
from django.utils import timezone

from registry.models import Upload
from registry.services import uploads_expire
from registry.store import S3Store, get_store
from tests.registry.upload_faults import kill_after_write
from tests.support.processes import free_port, gateway, wait_until

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def s3_endpoint():
    pytest.importorskip("moto")
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_store(s3_endpoint, settings, monkeypatch):
    import boto3

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    bucket = f"train-registry-{free_port()}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    settings.TRAIN_REGISTRY_STORE = "s3"
    settings.TRAIN_REGISTRY_S3_BUCKET = bucket
    settings.TRAIN_REGISTRY_S3_ENDPOINT_URL = s3_endpoint
    store = get_store()
    assert isinstance(store, S3Store)
    return store


def test_chunked_upload_across_parts_and_ranged_read(v2_operator, s3_store):
    data = os.urandom(S3Store.PART_BYTES + 3 * MIB)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    step = 3 * MIB
    for start in range(0, len(data), step):
        chunk = data[start:start + step]
        response = v2_operator.request("PATCH", location, chunk, HTTP_CONTENT_RANGE=f"{start}-{start + len(chunk) - 1}")
        assert response.status_code == 202, response.content
    session = s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix=s3_store.prefix + "uploads/")
    assert [item["Key"].rsplit("/", 1)[1][:5] for item in session["Contents"]] == ["tail-"], "one tail at a time"
    assert v2_operator.request("PUT", location, query={"digest": digest}).status_code == 201
    assert s3_store.blob_exists(digest)
    path = f"/v2/acme/app/blobs/{digest}"
    assert v2_operator.get(path).getvalue() == data
    ranged = v2_operator.get(path, HTTP_RANGE=f"bytes={len(data) - 100}-")
    assert ranged.status_code == 206 and ranged.getvalue() == data[-100:]
    assert v2_operator.request("POST", "/v2/acme/other/blobs/uploads/",
                               query={"mount": digest, "from": "acme/app"}).status_code == 201


def test_digest_mismatch_stores_nothing(v2_operator, s3_store):
    data = b"small blob"
    wrong = "sha256:" + "9" * 64
    response = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/", data, query={"digest": wrong})
    assert response.status_code == 400
    assert not s3_store.blob_exists(wrong)
    assert not Upload.objects.exists()


def test_empty_blob_and_whole_image(v2_operator, s3_store):
    assert v2_operator.push_blob("acme/app", b"")
    digest, _ = v2_operator.push_image("acme/app", "v1")
    assert v2_operator.get("/v2/acme/app/manifests/v1")["Docker-Content-Digest"] == digest


def test_expired_upload_is_aborted(v2_operator, s3_store):
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    v2_operator.request("PATCH", location, b"partial bytes")
    Upload.objects.update(expires_at=timezone.now())
    assert uploads_expire() == 1
    listing = s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix=s3_store.prefix + "uploads/")
    assert listing.get("KeyCount", 0) == 0
    assert s3_store.client.list_multipart_uploads(Bucket=s3_store.bucket).get("Uploads", []) == []


def test_a_patch_killed_after_its_store_write_leaves_nothing_that_is_read(v2_operator, s3_store, monkeypatch):
    first, lost, second = os.urandom(100), os.urandom(300), os.urandom(300)
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    assert v2_operator.request("PATCH", location, first, HTTP_CONTENT_RANGE="0-99").status_code == 202
    # The tail object is written, then the process dies before the commit.
    kill_after_write(monkeypatch, S3Store, v2_operator, location, lost, "100-399")
    # Until the dead request's lease expires, nobody writes to the session.
    blocked = v2_operator.request("PATCH", location, second, HTTP_CONTENT_RANGE="100-399")
    assert blocked.status_code == 416 and blocked["Range"] == "0-99"
    Upload.objects.update(lease_expires_at=timezone.now())  # the lease runs out
    assert v2_operator.request("PATCH", location, second, HTTP_CONTENT_RANGE="100-399").status_code == 202

    digest = "sha256:" + hashlib.sha256(first + second).hexdigest()
    assert v2_operator.request("PUT", location, query={"digest": digest}).status_code == 201
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest}").getvalue() == first + second
    listing = s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix=s3_store.prefix + "uploads/")
    assert listing.get("KeyCount", 0) == 0, "the dead request's tail went with the session"


def test_a_part_overwritten_after_its_commit_is_never_assembled(v2_operator, s3_store):
    data = os.urandom(S3Store.PART_BYTES + 1000)
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    assert v2_operator.request("PATCH", location, data).status_code == 202
    upload = Upload.objects.get()
    # A request that lost its lease but lived on re-sends part 1 with other bytes.
    s3_store.client.upload_part(Bucket=s3_store.bucket, Key=s3_store._upload_key(upload, "data"),
                                UploadId=upload.store_state["mpu"], PartNumber=1,
                                Body=os.urandom(S3Store.PART_BYTES))
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    response = v2_operator.request("PUT", location, query={"digest": digest})
    assert response.status_code == 400
    assert not s3_store.blob_exists(digest)
    assert not Upload.objects.exists()


def test_registry_verify_quarantines_a_damaged_object_and_a_push_repairs_it(v2_operator, s3_store):
    data = os.urandom(5000)
    digest = v2_operator.push_blob("acme/app", data)
    s3_store.client.put_object(Bucket=s3_store.bucket, Key=s3_store._blob_key(digest), Body=os.urandom(5000))
    out = io.StringIO()
    call_command("registry_verify", stdout=out)
    assert f"quarantined {digest}" in out.getvalue()
    assert v2_operator.head(f"/v2/acme/app/blobs/{digest}").status_code == 404
    quarantined = s3_store.client.list_objects_v2(Bucket=s3_store.bucket, Prefix=s3_store.prefix + "quarantine/")
    assert quarantined["KeyCount"] == 1, "kept for inspection"
    v2_operator.push_blob("acme/app", data)
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest}").getvalue() == data


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_a_gateway_worker_killed_after_an_s3_write_leaves_a_session_that_continues(operator, s3_endpoint, tmp_path):
    import boto3
    import requests

    bucket = f"train-registry-{free_port()}"
    credentials = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", aws_access_key_id="testing",
                 aws_secret_access_key="testing").create_bucket(Bucket=bucket)
    env = {"TRAIN_REGISTRY_STORE": "s3", "TRAIN_REGISTRY_S3_BUCKET": bucket,
           "TRAIN_REGISTRY_S3_ENDPOINT_URL": s3_endpoint, "TRAIN_REGISTRY_UPLOAD_LEASE_SECONDS": "2",
           "TRAIN_FAULTS": "upload_after_store_write:sigkill", **credentials}
    auth = ("acme", operator.plaintext)
    lost, data = os.urandom(300), os.urandom(300)
    with gateway(tmp_path, **env) as (base, _proc):
        start = requests.post(f"{base}/v2/acme/app/blobs/uploads/", auth=auth, timeout=30)
        location = base + start.headers["Location"]
        # The worker serving this PATCH is SIGKILLed after writing its tail object, before the commit.
        with pytest.raises(requests.ConnectionError):
            requests.patch(location, data=lost, auth=auth, timeout=30, headers={"Content-Range": "0-299"})

        def retried():
            response = requests.patch(location, data=data, auth=auth, timeout=30, headers={"Content-Range": "0-299"})
            assert response.status_code in (202, 416), response.text  # 416 while the dead worker's lease lasts
            return response.status_code == 202

        wait_until(retried, timeout=60, interval=0.5, message="the session to accept bytes again")
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        assert requests.put(location, params={"digest": digest}, auth=auth, timeout=30).status_code == 201
        assert requests.get(f"{base}/v2/acme/app/blobs/{digest}", auth=auth, timeout=30).content == data
