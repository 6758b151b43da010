"""sha512 digests for blobs (every push path, pull, mount) and manifests (push and pull by digest),
stored beside the sha256 layout."""

import hashlib
import json
import os

from registry.models import Blob
from registry.store import S3Store
from tests.registry.conftest import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST, digest_of, error_code
from tests.registry.test_s3_store import s3_endpoint, s3_store  # noqa: F401 (fixtures)

DATA = b"sha512 layer bytes " * 100


def sha512_of(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


def test_monolithic_post_verifies_with_sha512_and_serves_the_blob(v2_operator, settings, tmp_path):
    settings.TRAIN_REGISTRY_DATA_DIR = tmp_path
    digest = sha512_of(DATA)
    response = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/", DATA, query={"digest": digest})
    assert response.status_code == 201, response.content
    assert response["Docker-Content-Digest"] == digest
    head = v2_operator.head(f"/v2/acme/app/blobs/{digest}")
    assert head.status_code == 200 and head["Content-Length"] == str(len(DATA))
    assert b"".join(v2_operator.get(f"/v2/acme/app/blobs/{digest}").streaming_content) == DATA
    assert (tmp_path / "blobs" / "sha512" / digest[7:9] / digest[7:]).read_bytes() == DATA


def test_chunked_upload_finished_with_a_sha512_digest(v2_operator):
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    patch = v2_operator.request("PATCH", location, DATA[:700], HTTP_CONTENT_RANGE="0-699")
    assert patch.status_code == 202
    done = v2_operator.request("PUT", patch["Location"], DATA[700:], query={"digest": sha512_of(DATA)})
    assert done.status_code == 201, done.content
    assert Blob.objects.get(digest=sha512_of(DATA)).size == len(DATA)


def test_wrong_sha512_digest_stores_nothing(v2_operator):
    response = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/", DATA, query={"digest": sha512_of(b"other")})
    assert response.status_code == 400 and error_code(response) == "DIGEST_INVALID"
    assert not Blob.objects.exists()


def test_sha512_of_the_right_bytes_is_not_their_sha256(v2_operator):
    # The same bytes pushed under both algorithms are two blobs, each verified with its own.
    v2_operator.push_blob("acme/app", DATA)
    v2_operator.request("POST", "/v2/acme/app/blobs/uploads/", DATA, query={"digest": sha512_of(DATA)})
    assert set(Blob.objects.values_list("digest", flat=True)) == {digest_of(DATA), sha512_of(DATA)}


def test_mount_by_sha512(v2_operator):
    digest = sha512_of(DATA)
    v2_operator.request("POST", "/v2/acme/one/blobs/uploads/", DATA, query={"digest": digest})
    mounted = v2_operator.request("POST", "/v2/acme/two/blobs/uploads/", query={"mount": digest, "from": "acme/one"})
    assert mounted.status_code == 201 and mounted["Docker-Content-Digest"] == digest
    assert v2_operator.head(f"/v2/acme/two/blobs/{digest}").status_code == 200


def test_mount_of_an_unknown_algorithm_opens_an_upload_session(v2_operator):
    response = v2_operator.request("POST", "/v2/acme/two/blobs/uploads/",
                                   query={"mount": "blake3:" + "a" * 64, "from": "acme/one"})
    assert response.status_code == 202 and "/blobs/uploads/" in response["Location"]


def _sha512_image(v2):
    config = json.dumps({"architecture": "amd64", "os": "linux"}).encode()
    for blob in (config, DATA):
        assert v2.request("POST", "/v2/acme/app/blobs/uploads/", blob, query={"digest": sha512_of(blob)}).status_code \
            == 201
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": sha512_of(config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha512_of(DATA),
                            "size": len(DATA)}]}
    return json.dumps(document).encode()


def test_manifest_pushed_by_sha512_digest_is_verified_and_served_by_it(v2_operator):
    body = _sha512_image(v2_operator)
    digest = sha512_of(body)
    response = v2_operator.request("PUT", f"/v2/acme/app/manifests/{digest}", body, content_type=OCI_MANIFEST)
    assert response.status_code == 201, response.content
    assert response["Docker-Content-Digest"] == digest
    assert response["Location"] == f"/v2/acme/app/manifests/{digest}"
    served = v2_operator.get(f"/v2/acme/app/manifests/{digest}")
    assert served.status_code == 200 and served.content == body and served["Docker-Content-Digest"] == digest
    # It is stored under its sha512 digest only.
    assert v2_operator.get(f"/v2/acme/app/manifests/{digest_of(body)}").status_code == 404


def test_manifest_whose_bytes_do_not_match_its_sha512_reference_is_refused(v2_operator):
    body = _sha512_image(v2_operator)
    response = v2_operator.request("PUT", f"/v2/acme/app/manifests/{sha512_of(body + b' ')}", body,
                                   content_type=OCI_MANIFEST)
    assert response.status_code == 400 and error_code(response) == "DIGEST_INVALID"


def test_index_of_sha512_manifests(v2_operator):
    body = _sha512_image(v2_operator)
    child = sha512_of(body)
    v2_operator.request("PUT", f"/v2/acme/app/manifests/{child}", body, content_type=OCI_MANIFEST)
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": child, "size": len(body)}]}).encode()
    response = v2_operator.request("PUT", f"/v2/acme/app/manifests/{sha512_of(index)}", index, content_type=OCI_INDEX)
    assert response.status_code == 201, response.content
    tagged = v2_operator.request("PUT", "/v2/acme/app/manifests/latest", index, content_type=OCI_INDEX)
    # Pushed by tag, the same bytes are stored under their canonical (sha256) digest.
    assert tagged.status_code == 201 and tagged["Docker-Content-Digest"] == digest_of(index)


def test_referrers_of_a_sha512_subject(v2_operator):
    body = _sha512_image(v2_operator)
    subject = sha512_of(body)
    v2_operator.request("PUT", f"/v2/acme/app/manifests/{subject}", body, content_type=OCI_MANIFEST)
    config = b"{}"
    v2_operator.push_blob("acme/app", config)
    referrer = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": "application/vnd.example.sbom",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(config), "size": 2},
                "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": len(body)}}
    pushed = v2_operator.push_manifest("acme/app", "sbom", referrer)
    assert pushed.status_code == 201 and pushed["OCI-Subject"] == subject
    [found] = v2_operator.get(f"/v2/acme/app/referrers/{subject}").json()["manifests"]
    assert found["digest"] == pushed["Docker-Content-Digest"]


def test_tag_parameters_tag_a_manifest_pushed_by_sha512_digest(v2_operator):
    body = _sha512_image(v2_operator)
    digest = sha512_of(body)
    response = v2_operator.request("PUT", f"/v2/acme/app/manifests/{digest}", body, content_type=OCI_MANIFEST,
                                   query={"tag": ["v1", "latest"]})
    assert response.status_code == 201, response.content
    assert response["OCI-Tag"] == "v1, latest"
    for tag in ("v1", "latest"):
        served = v2_operator.get(f"/v2/acme/app/manifests/{tag}")
        assert served.status_code == 200 and served["Docker-Content-Digest"] == digest
    assert v2_operator.get("/v2/acme/app/tags/list").json()["tags"] == ["latest", "v1"]


def test_tag_parameters_are_checked_and_need_a_digest_reference(v2_operator):
    body = _sha512_image(v2_operator)
    bad = v2_operator.request("PUT", f"/v2/acme/app/manifests/{sha512_of(body)}", body, content_type=OCI_MANIFEST,
                              query={"tag": ["ok", "-bad"]})
    assert bad.status_code == 400 and error_code(bad) == "TAG_INVALID"
    by_tag = v2_operator.request("PUT", "/v2/acme/app/manifests/v1", body, content_type=OCI_MANIFEST,
                                 query={"tag": "v2"})
    assert by_tag.status_code == 400 and error_code(by_tag) == "TAG_INVALID"
    assert v2_operator.get("/v2/acme/app/tags/list").json()["tags"] == []


def test_sha512_chunked_upload_on_the_s3_store(v2_operator, s3_store):  # noqa: F811 (the imported fixture)
    data = os.urandom(S3Store.PART_BYTES + 1024)
    digest = sha512_of(data)
    location = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/")["Location"]
    half = len(data) // 2
    for start, chunk in ((0, data[:half]), (half, data[half:])):
        response = v2_operator.request("PATCH", location, chunk, HTTP_CONTENT_RANGE=f"{start}-{start + len(chunk) - 1}")
        assert response.status_code == 202, response.content
    assert v2_operator.request("PUT", location, query={"digest": digest}).status_code == 201
    assert s3_store.client.head_object(Bucket=s3_store.bucket, Key=f"{s3_store.prefix}blobs/sha512/{digest[7:]}")
    assert v2_operator.get(f"/v2/acme/app/blobs/{digest}").getvalue() == data
