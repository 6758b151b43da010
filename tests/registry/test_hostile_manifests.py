"""Manifests built to be read two ways, or to overflow what the database holds, are refused with
400 MANIFEST_INVALID naming the field, and nothing is stored."""

import json

import pytest

from registry.models import Manifest, Repository
from tests.registry.conftest import OCI_CONFIG, OCI_MANIFEST, error_code


@pytest.fixture
def image(v2_operator):
    config = json.dumps({"os": "linux"}).encode()
    layer = b"layer bytes"
    return {
        "config": {"mediaType": OCI_CONFIG, "digest": v2_operator.push_blob("acme/app", config), "size": len(config)},
        "layer": {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": v2_operator.push_blob(
            "acme/app", layer), "size": len(layer)},
    }


def put_raw(v2, body: bytes, reference="v1"):
    return v2.request("PUT", f"/v2/acme/app/manifests/{reference}", body, content_type=OCI_MANIFEST)


def refused(response):
    assert response.status_code == 400, response.content
    assert error_code(response) == "MANIFEST_INVALID"
    assert not Manifest.objects.exists()
    return response.json()["errors"][0]


def test_duplicate_layers_key_is_refused(v2_operator, image):
    # The checked `layers` (the real one) and the one a last-wins parser keeps (a missing blob) differ.
    missing = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + "0" * 64, "size": 1}
    config, layer, other = json.dumps(image["config"]), json.dumps(image["layer"]), json.dumps(missing)
    body = (f'{{"schemaVersion": 2, "mediaType": "{OCI_MANIFEST}", "config": {config}, '
            f'"layers": [{layer}], "layers": [{other}]}}').encode()
    error = refused(put_raw(v2_operator, body))
    assert "layers" in error["message"]


def test_duplicate_key_inside_a_descriptor_is_refused(v2_operator, image):
    config = json.dumps(image["config"])[:-1] + f', "digest": "sha256:{"1" * 64}"}}'
    body = f'{{"schemaVersion": 2, "config": {config}, "layers": []}}'.encode()
    assert "digest" in refused(put_raw(v2_operator, body))["message"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused(v2_operator, image, constant):
    config = json.dumps(image["config"])
    body = f'{{"schemaVersion": 2, "config": {config}, "layers": [], "x-score": {constant}}}'.encode()
    assert constant in refused(put_raw(v2_operator, body))["message"]


@pytest.mark.parametrize("size", [2**63, 2**64, 10**30, -1, 1.5, True])
def test_sizes_outside_int64_are_refused_naming_the_field(v2_operator, image, size):
    layer = dict(image["layer"], size=size)
    document = {"schemaVersion": 2, "config": image["config"], "layers": [layer]}
    error = refused(v2_operator.push_manifest("acme/app", "v1", document))
    assert error["detail"] == {"field": "layers[0].size"}


def test_largest_int64_size_is_accepted_and_totals_do_not_overflow(v2_operator, image):
    layer = dict(image["layer"], size=2**63 - 1)
    document = {"schemaVersion": 2, "config": image["config"], "layers": [layer]}
    assert v2_operator.push_manifest("acme/app", "v1", document).status_code == 400  # sum past 2^63-1
    document = {"schemaVersion": 2, "config": dict(image["config"], size=0), "layers": [layer]}
    response = v2_operator.push_manifest("acme/app", "v1", document)
    assert response.status_code == 201, response.content
    assert Manifest.objects.get().total_size == 2**63 - 1


@pytest.mark.parametrize("where", ["artifactType", "config.mediaType", "layers[0].mediaType"])
@pytest.mark.parametrize("value", ["application/" + "x" * 200, "application/x\u0000y", "text/\ud800", "a\nb"])
def test_long_or_unprintable_media_types_are_refused(v2_operator, image, where, value):
    document = {"schemaVersion": 2, "config": dict(image["config"]), "layers": [dict(image["layer"])]}
    if where == "artifactType":
        document["artifactType"] = value
    elif where == "config.mediaType":
        document["config"]["mediaType"] = value
    else:
        document["layers"][0]["mediaType"] = value
    error = refused(v2_operator.push_manifest("acme/app", "v1", document))
    assert error["detail"] == {"field": where}


def test_media_type_of_exactly_200_characters_is_accepted(v2_operator, image):
    artifact_type = "application/" + "x" * (200 - len("application/"))
    document = {"schemaVersion": 2, "artifactType": artifact_type, "config": image["config"], "layers": []}
    assert v2_operator.push_manifest("acme/app", "v1", document).status_code == 201
    assert Manifest.objects.get().artifact_type == artifact_type


def test_refused_manifest_leaves_its_repository_without_tags(v2_operator, image):
    refused(put_raw(v2_operator, b'{"schemaVersion": 2, "config": {}, "layers": [], "layers": []}'))
    assert not Repository.objects.get(name="acme/app").tags.exists()
