"""One check per known registry pitfall that applies to serving a registry (#4 is about
mirroring to clouds, #10 about API keys minting keys: neither is served by /v2). The rest are also
covered in the files named after each behaviour; here each is pinned to its number."""

import base64
import json

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from registry.models import Manifest
from tests.registry.conftest import DOCKER_MANIFEST, OCI_CONFIG, OCI_MANIFEST, basic, digest_of, error_code


def test_1_catalog_n_is_clamped(v2_operator, settings):
    settings.TRAIN_REGISTRY_MAX_PAGE = 1
    v2_operator.push_image("acme/a", "v1", seed="1")
    v2_operator.push_image("acme/b", "v1", seed="2")
    assert len(v2_operator.get("/v2/_catalog", query={"n": 10**12}).json()["repositories"]) == 1


def test_2_manifest_body_is_capped_before_reading(v2_operator, settings):
    settings.TRAIN_REGISTRY_MAX_MANIFEST_BYTES = 100
    response = v2_operator.request("PUT", "/v2/acme/app/manifests/v1", b"{" + b" " * 200 + b"}",
                                   content_type=OCI_MANIFEST)
    assert response.status_code == 413


def test_3_one_media_type_per_digest(v2_operator):
    config = json.dumps({"os": "linux"}).encode()
    config_digest = v2_operator.push_blob("acme/app", config)
    document = {"schemaVersion": 2, "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": len(config)},
                "layers": []}
    assert v2_operator.push_manifest("acme/app", "oci", document, OCI_MANIFEST).status_code == 201
    # The same bytes (no mediaType field) sent as a Docker manifest: refused, not stored twice.
    response = v2_operator.push_manifest("acme/app", "docker", document, DOCKER_MANIFEST)
    assert response.status_code == 400 and error_code(response) == "MANIFEST_INVALID"
    assert Manifest.objects.get().media_type == OCI_MANIFEST


def test_5_keys_named_in_the_token_header_are_ignored(client, operator, v2_operator):
    v2_operator.push_image("acme/app", "v1")
    attacker = ec.generate_private_key(ec.SECP256R1())
    public = attacker.public_key().public_numbers()

    def b64(number):
        return base64.urlsafe_b64encode(number.to_bytes(32, "big")).rstrip(b"=").decode()

    now = timezone.now()
    token = jwt.encode(
        {"iss": "train", "sub": "acme", "aud": "train-registry", "iat": now, "nbf": now,
         "exp": now + timezone.timedelta(minutes=5), "jti": "x", "key": operator.key.pk,
         "access": [{"type": "repository", "name": "acme/app", "actions": ["pull"]}]},
        attacker, algorithm="ES256",
        headers={"jwk": {"kty": "EC", "crv": "P-256", "x": b64(public.x), "y": b64(public.y)}, "kid": "attacker"})
    assert client.get("/v2/acme/app/tags/list", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_6_a_blob_is_readable_only_where_it_is_linked(v2_operator, v2_outsider):
    digest = v2_operator.push_blob("acme/app", b"private layer")
    v2_outsider.push_blob("globex/app", b"something")
    assert v2_outsider.head(f"/v2/globex/app/blobs/{digest}").status_code == 404
    assert v2_outsider.head(f"/v2/acme/app/blobs/{digest}").status_code == 403


def test_7_deleted_manifest_is_gone_by_digest(v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    assert v2_operator.request("DELETE", f"/v2/acme/app/manifests/{digest}").status_code == 202
    assert v2_operator.get(f"/v2/acme/app/manifests/{digest}").status_code == 404
    assert v2_operator.head("/v2/acme/app/manifests/v1").status_code == 404


def test_8_overwriting_a_tag_needs_push(v2_operator, v2_viewer, v2_member):
    _, document = v2_operator.push_image("acme/app", "latest")
    assert v2_viewer.push_manifest("acme/app", "latest", document).status_code == 403
    assert v2_member.push_manifest("acme/app", "latest", document).status_code == 201


def test_9_basic_credentials_on_v2_have_the_same_ceiling(client, viewer, outsider, v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    as_viewer = basic("acme", viewer.plaintext)
    assert client.get(f"/v2/acme/app/manifests/{digest}", HTTP_AUTHORIZATION=as_viewer).status_code == 200
    assert client.post("/v2/acme/app/blobs/uploads/", HTTP_AUTHORIZATION=as_viewer).status_code == 403
    as_outsider = basic("globex", outsider.plaintext)
    assert client.get("/v2/acme/app/tags/list", HTTP_AUTHORIZATION=as_outsider).status_code == 403
    assert client.get("/v2/acme/app/tags/list", HTTP_AUTHORIZATION=basic("acme", outsider.plaintext)).status_code == 401


def test_11_token_reuse_across_repositories_fails(client, v2_operator):
    v2_operator.push_image("acme/one", "v1")
    v2_operator.push_image("acme/two", "v1")
    token = v2_operator.token("repository:acme/one:pull")
    assert client.get("/v2/acme/one/tags/list", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200
    assert client.get("/v2/acme/two/tags/list", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 401


def test_12_digest_is_validated_before_it_becomes_a_key(v2_operator):
    response = v2_operator.request("POST", "/v2/acme/app/blobs/uploads/", b"x", query={"digest": "sha256:../../x"})
    assert response.status_code == 400 and error_code(response) == "DIGEST_INVALID"


def test_13_malformed_input_is_never_500(v2_operator):
    for path in ["/v2/acme/app/manifests/sha256:", "/v2/acme/app/blobs/sha256:" + "g" * 64,
                 "/v2/acme/app/referrers/nope", "/v2/ACME/app/tags/list"]:
        assert v2_operator.get(path).status_code == 400, path


def test_14_upload_sessions_are_bound_to_their_repository(v2_operator):
    location = v2_operator.request("POST", "/v2/acme/one/blobs/uploads/")["Location"]
    other = location.replace("acme/one", "acme/two")
    response = v2_operator.request("PUT", other, b"x", query={"digest": digest_of(b"x")})
    assert response.status_code == 404 and error_code(response) == "BLOB_UPLOAD_UNKNOWN"
