"""The copier's client speaks the Bearer challenge flow against a real registry (Train's own gateway),
renews a token the registry stops accepting mid-copy, never sends credentials to a realm on another
host, and drops Authorization when a redirect leaves the registry's host."""

import json

import pytest
import responses

from registry.client import Credentials, OciClient, RegistryClientError
from registry.copier import Copier, MemoryProgress, plan_copy
from registry.models import Repository
from tests.registry.conftest import OCI_MANIFEST, V2

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def push(v2, name, layers):
    config = json.dumps({"os": "linux", "architecture": "amd64"}).encode()
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                           "digest": v2.push_blob(name, config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": v2.push_blob(name, layer), "size": len(layer)} for layer in layers]}
    response = v2.push_manifest(name, "v1", document)
    assert response.status_code == 201, response.content
    return response["Docker-Content-Digest"]


def test_a_bearer_registry_receives_the_image_and_a_refused_token_is_renewed(registry_server, operator):
    v2 = V2(operator)
    layers = [f"bearer layer {i}".encode() * 100 for i in range(3)]
    digest = push(v2, "acme/trainer", layers)
    client = OciClient(registry_server, lambda: Credentials(operator.account.id, operator.plaintext),
                       backoff_seconds=0.01)
    plan = plan_copy(repository=Repository.objects.get(name="acme/trainer"), digest=digest)
    progress = MemoryProgress()
    copier = Copier(client, "acme/mirror", progress, parallel_blobs=1)
    copier.copy_blob(plan.blobs[0])
    assert client._tokens, "the first blob went through the token flow"
    # The registry stops accepting the cached token (as after its expiry): the next request renews it.
    client._tokens = {scope: ("not-a-valid-token", expiry) for scope, (_token, expiry) in client._tokens.items()}
    assert copier.copy(plan) == digest
    mirrored = v2.get(f"/v2/acme/mirror/manifests/{digest}", HTTP_ACCEPT=OCI_MANIFEST)
    assert mirrored.status_code == 200
    assert mirrored["Docker-Content-Digest"] == digest
    for layer_ref, layer in zip(plan.blobs[1:], layers, strict=True):
        assert b"".join(v2.get(f"/v2/acme/mirror/blobs/{layer_ref.digest}").streaming_content) == layer


@responses.activate
def test_credentials_are_never_sent_to_a_realm_on_another_host():
    responses.add(responses.HEAD, "https://registry.example.com/v2/r/blobs/sha256:" + "a" * 64, status=401,
                  headers={"WWW-Authenticate": 'Bearer realm="https://attacker.example.net/token",service="x"'})
    client = OciClient("https://registry.example.com", lambda: Credentials("u", "secret"), backoff_seconds=0)
    with pytest.raises(RegistryClientError) as refused:
        client.blob_exists("r", "sha256:" + "a" * 64)
    assert refused.value.permanent
    assert all("attacker" not in call.request.url for call in responses.calls)


@responses.activate
def test_a_realm_the_target_names_is_allowed():
    responses.add(responses.HEAD, "https://registry.example.com/v2/r/blobs/sha256:" + "b" * 64, status=401,
                  headers={"WWW-Authenticate": 'Bearer realm="https://auth.example.com/token",service="reg"'})
    responses.add(responses.GET, "https://auth.example.com/token", json={"token": "t0k", "expires_in": 300})
    responses.add(responses.HEAD, "https://registry.example.com/v2/r/blobs/sha256:" + "b" * 64, status=200)
    client = OciClient("https://registry.example.com", lambda: Credentials("u", "pw"),
                       realm_hosts=("auth.example.com",), backoff_seconds=0)
    assert client.blob_exists("r", "sha256:" + "b" * 64)
    token_call = responses.calls[1].request
    assert "scope=repository%3Ar%3Apull%2Cpush" in token_call.url and "service=reg" in token_call.url
    assert token_call.headers["Authorization"].startswith("Basic ")
    assert responses.calls[2].request.headers["Authorization"] == "Bearer t0k"


@responses.activate
def test_a_redirect_to_object_storage_drops_authorization():
    blob = "https://registry.example.com/v2/r/blobs/sha256:" + "c" * 64
    responses.add(responses.HEAD, blob, status=307, headers={"Location": "https://bucket.s3.example.com/obj?sig=1"})
    responses.add(responses.HEAD, "https://bucket.s3.example.com/obj", status=200)
    client = OciClient("https://registry.example.com", lambda: Credentials("AWS", "pw"), backoff_seconds=0)
    client._basic = True
    assert client.blob_exists("r", "sha256:" + "c" * 64)
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert "Authorization" not in responses.calls[1].request.headers


@responses.activate
def test_more_than_three_redirects_is_a_permanent_error():
    for hop in range(5):
        responses.add(responses.HEAD, f"https://registry.example.com/hop{hop}", status=302,
                      headers={"Location": f"https://registry.example.com/hop{hop + 1}"})
    client = OciClient("https://registry.example.com", None, backoff_seconds=0)
    with pytest.raises(RegistryClientError) as refused:
        client.request("HEAD", "/hop0", scope="repository:r:pull")
    assert refused.value.permanent and "redirects" in refused.value.message


@responses.activate
def test_an_expired_credential_is_fetched_again_not_reused():
    from datetime import UTC, datetime, timedelta

    issued = []

    def provider():
        issued.append(1)
        return Credentials("AWS", f"pw{len(issued)}", expires_at=datetime.now(UTC) - timedelta(seconds=1)
                           if len(issued) == 1 else datetime.now(UTC) + timedelta(hours=1))

    client = OciClient("https://registry.example.com", provider, backoff_seconds=0)
    assert client.credentials().password == "pw1"
    assert client.credentials().password == "pw2"  # the first had expired
    assert client.credentials().password == "pw2"
