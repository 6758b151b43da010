"""Manifest PUT/GET/HEAD for the four media types, stored and served verbatim, and every reason a
manifest is refused."""

import json

import pytest

from registry.models import Manifest, Tag
from tests.registry.conftest import (
    DOCKER_LIST,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    digest_of,
    error_code,
)


@pytest.mark.parametrize("media_type", [OCI_MANIFEST, DOCKER_MANIFEST])
def test_image_manifest_by_tag_is_served_verbatim(v2_operator, media_type):
    digest, document = v2_operator.push_image("acme/app", "v1", media_type=media_type)
    response = v2_operator.get("/v2/acme/app/manifests/v1")
    assert response.status_code == 200
    assert response.content == json.dumps(document).encode()
    assert digest_of(response.content) == digest == response["Docker-Content-Digest"]
    assert response["Content-Type"] == media_type
    by_digest = v2_operator.get(f"/v2/acme/app/manifests/{digest}")
    assert by_digest.content == response.content


@pytest.mark.parametrize("index_type,child_type", [(OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)])
def test_index_of_pushed_manifests(v2_operator, index_type, child_type):
    children = [v2_operator.push_image("acme/app", f"arch{i}", seed=str(i), media_type=child_type)[0] for i in (1, 2)]
    index = {"schemaVersion": 2, "mediaType": index_type, "manifests": [
        {"mediaType": child_type, "digest": d, "size": Manifest.objects.get(digest=d).size,
         "platform": {"architecture": a, "os": "linux"}} for d, a in zip(children, ["amd64", "arm64"], strict=True)]}
    response = v2_operator.push_manifest("acme/app", "multi", index, index_type)
    assert response.status_code == 201
    served = v2_operator.get("/v2/acme/app/manifests/multi")
    assert served["Content-Type"] == index_type and json.loads(served.content) == index


def test_head_matches_get_without_a_body(v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    response = v2_operator.head("/v2/acme/app/manifests/v1")
    assert response.status_code == 200 and response.content == b""
    assert response["Docker-Content-Digest"] == digest
    assert response["Content-Type"] == OCI_MANIFEST
    assert int(response["Content-Length"]) == Manifest.objects.get(digest=digest).size


def test_put_by_digest(v2_operator):
    _, document = v2_operator.push_image("acme/app", "v1")
    body = json.dumps(document, indent=2).encode()
    response = v2_operator.request("PUT", f"/v2/acme/app/manifests/{digest_of(body)}", body, content_type=OCI_MANIFEST)
    assert response.status_code == 201
    assert response["Location"] == f"/v2/acme/app/manifests/{digest_of(body)}"


def test_put_by_digest_that_does_not_match_is_400(v2_operator):
    _, document = v2_operator.push_image("acme/app", "v1")
    response = v2_operator.push_manifest("acme/app", "sha256:" + "1" * 64, document)
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


def test_unknown_tag_and_digest_are_404(v2_operator):
    v2_operator.push_image("acme/app", "v1")
    assert error_code(v2_operator.get("/v2/acme/app/manifests/nope")) == "MANIFEST_UNKNOWN"
    assert v2_operator.get("/v2/acme/app/manifests/sha256:" + "2" * 64).status_code == 404
    assert v2_operator.head("/v2/acme/app/manifests/nope").status_code == 404


@pytest.fixture
def image(v2_operator):
    _, document = v2_operator.push_image("acme/app", "v1")
    return document


def refused(v2, body, media_type=OCI_MANIFEST):
    response = v2.request("PUT", "/v2/acme/app/manifests/bad", body, content_type=media_type)
    assert response.status_code == 400, response.content
    assert not Tag.objects.filter(name="bad").exists()
    return error_code(response)


def test_invalid_json_is_manifest_invalid(v2_operator, image):
    assert refused(v2_operator, b"{not json") == "MANIFEST_INVALID"
    assert refused(v2_operator, b"[" * 100000 + b"]" * 100000) == "MANIFEST_INVALID"
    assert refused(v2_operator, b"[]") == "MANIFEST_INVALID"


def test_content_type_must_match_media_type(v2_operator, image):
    body = json.dumps(image).encode()
    assert refused(v2_operator, body, DOCKER_MANIFEST) == "MANIFEST_INVALID"
    assert refused(v2_operator, body, "application/json") == "MANIFEST_INVALID"


def test_schema1_is_refused(v2_operator, image):
    body = json.dumps({"schemaVersion": 1, "name": "acme/app", "tag": "bad", "fsLayers": []}).encode()
    assert refused(v2_operator, body, "application/vnd.docker.distribution.manifest.v1+prettyjws") == "MANIFEST_INVALID"


def test_document_that_is_both_index_and_image_is_refused(v2_operator, image):
    body = json.dumps({**image, "manifests": []}).encode()
    assert refused(v2_operator, body) == "MANIFEST_INVALID"
    assert refused(v2_operator, json.dumps({**image, "mediaType": OCI_INDEX, "manifests": []}).encode(),
                   OCI_INDEX) == "MANIFEST_INVALID"


def test_missing_blob_is_manifest_blob_unknown(v2_operator, image):
    document = {**image, "layers": [{"mediaType": "x", "digest": "sha256:" + "3" * 64, "size": 1}]}
    assert refused(v2_operator, json.dumps(document).encode()) == "MANIFEST_BLOB_UNKNOWN"


def test_another_accounts_blob_is_manifest_blob_unknown(v2_operator, v2_outsider):
    config = json.dumps({"os": "linux"}).encode()
    stolen = v2_operator.push_blob("acme/app", b"acme's secret layer")
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": OCI_CONFIG, "digest": v2_outsider.push_blob("globex/app", config),
                           "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": stolen, "size": 19}]}
    response = v2_outsider.push_manifest("globex/app", "v1", document)
    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"


def test_index_naming_an_unknown_manifest_is_manifest_blob_unknown(v2_operator, image):
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX,
             "manifests": [{"mediaType": OCI_MANIFEST, "digest": "sha256:" + "4" * 64, "size": 10}]}
    assert refused(v2_operator, json.dumps(index).encode(), OCI_INDEX) == "MANIFEST_BLOB_UNKNOWN"


def test_bad_descriptors_are_manifest_invalid(v2_operator, image):
    for layer in [{"digest": "sha256:abc", "size": 1}, {"digest": image["config"]["digest"], "size": -1}, "x"]:
        assert refused(v2_operator, json.dumps({**image, "layers": [layer]}).encode()) == "MANIFEST_INVALID"


def test_manifest_over_four_mib_is_413(v2_operator, settings, image):
    body = json.dumps({**image, "annotations": {"pad": "x" * settings.TRAIN_REGISTRY_MAX_MANIFEST_BYTES}}).encode()
    response = v2_operator.request("PUT", "/v2/acme/app/manifests/big", body, content_type=OCI_MANIFEST)
    assert response.status_code == 413
    assert not Tag.objects.filter(name="big").exists()


def test_manifest_of_exactly_four_mib_is_accepted(v2_operator, settings, image):
    body = json.dumps({**image, "annotations": {"pad": ""}}).encode()
    padding = b"x" * (settings.TRAIN_REGISTRY_MAX_MANIFEST_BYTES - len(body))
    body = body.replace(b'"pad": ""', b'"pad": "' + padding + b'"')
    assert len(body) == settings.TRAIN_REGISTRY_MAX_MANIFEST_BYTES
    response = v2_operator.request("PUT", "/v2/acme/app/manifests/big", body, content_type=OCI_MANIFEST)
    assert response.status_code == 201


def test_viewer_cannot_push_a_manifest(v2_operator, v2_viewer, image):
    response = v2_viewer.push_manifest("acme/app", "v2", image)
    assert response.status_code == 403 and error_code(response) == "DENIED"


def test_non_distributable_layers_need_not_be_pushed(v2_operator, image):
    foreign = {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
               "digest": "sha256:" + "5" * 64, "size": 10, "urls": ["https://example.com/layer"]}
    document = {**image, "layers": [*image["layers"], foreign]}
    assert v2_operator.push_manifest("acme/app", "foreign", document).status_code == 201
