"""ACR as a mirror target: an image pushed to Train is copied with an Entra ID token exchanged for an
ACR refresh token, end to end through a fake of Entra ID and ACR's token endpoints in front of a real
Distribution registry that verifies every registry token; tokens that expire mid-copy are renewed; a
refusal is a permanent failure; invalid parameters are refused by name."""

import base64
import dataclasses
import json
import os
import subprocess
import sys
import time

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec

from backends.azure import acr
from backends.azure.acr import acr_target
from backends.base import SpecError
from registry.mirror import mirror_ensure, mirror_run
from registry.models import MirrorState, Repository
from tests.fakecloud.registry_auth import pulled_digest, registry_auth_fake
from tests.registry.conftest import V2
from tests.registry.test_mirror_copier import push_layers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TENANT = "2f4a9838-26b7-47ee-be60-ccc1fdec5953"
CLIENT = "9c1e1a4e-3d5c-4b8e-a0a1-6a4f7d1b2c3d"
SECRET = "app-secret-" + "x" * 20
REPOSITORY = "train/acme/trainer"


@pytest.fixture
def azure(tmp_path, monkeypatch):
    """The fake, with Train's app registered in the customer's tenant."""
    with registry_auth_fake(tmp_path / "azure", "azure") as fake:
        fake.apps[TENANT] = {CLIENT: SECRET}
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_bundle))
        acr._entra.clear()
        acr._refresh_tokens.clear()
        yield fake
        acr._entra.clear()
        acr._refresh_tokens.clear()


@pytest.fixture
def pushed(operator):
    layers = [f"acr layer {i} ".encode() * 300 for i in range(5)]
    digest = push_layers(V2(operator), "acme/trainer", layers)
    return Repository.objects.get(name="acme/trainer"), digest


def target_for(fake, **overrides):
    params = {"registry_name": "acmeimages", "repository": REPOSITORY, "tenant_id": TENANT, "client_id": CLIENT,
              "client_secret": SECRET, "authority_url": fake.base, "registry_endpoint_url": fake.base, **overrides}
    return acr_target(**params)


def copy(pushed, target):
    repository, digest = pushed
    return mirror_run(mirror_id=mirror_ensure(repository=repository, digest=digest, target=target).pk, target=target)


def test_an_image_reaches_the_registry_with_an_exchanged_refresh_token(azure, pushed):
    target = target_for(azure)
    mirror = copy(pushed, target)
    assert mirror.state == MirrorState.DONE, mirror.error
    digest = pushed[1]
    assert pulled_digest(azure, REPOSITORY, digest) == digest
    assert target.reference(digest) == f"{azure.service}/{REPOSITORY}@{digest}"
    assert target.label == "ACR"
    assert azure.calls["entra_token"] == 1
    assert azure.calls["acr_exchange"] == 1
    assert azure.calls["acr_token"] >= 1
    assert sum(azure.refused.values()) == 0


def test_the_refresh_token_is_cached_until_shortly_before_its_expiry(azure, pushed):
    first = target_for(azure).credentials()
    assert first.username == "00000000-0000-0000-0000-000000000000"
    claims = json.loads(base64.urlsafe_b64decode(first.password.split(".")[1] + "=="))
    assert first.expires_at.timestamp() == claims["exp"] - acr.EXPIRY_MARGIN.total_seconds()
    assert target_for(azure).credentials() == first  # a target built afresh: no new exchange
    assert azure.calls["acr_exchange"] == 1


def test_a_refresh_token_that_is_not_a_jwt_is_kept_three_hours():
    expiry = acr._expiry("opaque-refresh-token")
    assert abs(expiry.timestamp() - (time.time() + 3 * 3600)) < 60


def test_the_default_target_is_the_registry_host():
    target = acr_target(registry_name="AcmeImages", repository=REPOSITORY, tenant_id=TENANT, client_id=CLIENT,
                        client_secret=SECRET)
    assert target.url == "https://acmeimages.azurecr.io"
    assert target.reference("sha256:" + "a" * 64) == f"acmeimages.azurecr.io/{REPOSITORY}@sha256:" + "a" * 64


def test_tokens_that_expire_mid_copy_are_renewed(azure, pushed):
    azure.token_seconds = 2  # every token the fake issues lives 2 s; it refuses expired ones
    azure.forward_delay_seconds = 0.3  # one blob at a time, ~3 requests each: the copy outlives them
    target = dataclasses.replace(target_for(azure), parallel_blobs=1)
    mirror = copy(pushed, target)
    assert mirror.state == MirrorState.DONE, mirror.error
    assert pulled_digest(azure, REPOSITORY, pushed[1]) == pushed[1]
    assert azure.issued_count("acr-refresh") >= 2  # renewed during the copy
    assert sum(azure.refused.values()) == 0  # and never presented once expired


def test_a_wrong_client_secret_fails_permanently(azure, pushed):
    mirror = copy(pushed, target_for(azure, client_secret="wrong-secret"))
    assert mirror.state == MirrorState.FAILED
    assert "Entra ID refused" in mirror.error and CLIENT in mirror.error
    assert azure.refused["entra_token"] >= 1
    assert azure.calls["acr_exchange"] == 0


def test_a_tenant_the_app_is_not_registered_in_fails_permanently(azure, pushed):
    other_tenant = "11111111-2222-3333-4444-555555555555"
    mirror = copy(pushed, target_for(azure, tenant_id=other_tenant))
    assert mirror.state == MirrorState.FAILED
    assert other_tenant in mirror.error


@pytest.mark.parametrize(("field", "value"), [
    ("registry_name", "acr"), ("registry_name", "acme-images"), ("registry_name", "a" * 51),
    ("repository", "Train/Acme"), ("repository", "train//acme"), ("repository", ""),
    ("tenant_id", "contoso.onmicrosoft.com"), ("tenant_id", "../common"), ("client_id", "not-a-guid"),
    ("client_secret", ""), ("client_secret", "line\nbreak"), ("client_secret", "x" * 1025),
    ("authority_url", "https://login.example.net"), ("authority_url", "http://login.microsoftonline.com"),
    ("registry_endpoint_url", "https://127.0.0.1:1\\@acme.azurecr.io"),
])
def test_invalid_parameters_are_refused_by_name(field, value):
    params = {"registry_name": "acmeimages", "repository": REPOSITORY, "tenant_id": TENANT, "client_id": CLIENT,
              "client_secret": SECRET, field: value}
    with pytest.raises(SpecError) as refused:
        acr_target(**params)
    assert list(refused.value.errors) == [field]


def test_the_registry_itself_refuses_a_token_signed_by_another_key(azure):
    """The target checks tokens: a well-formed token from any other signer gets nothing."""
    genuine = azure.registry_jwt("someone", [f"repository:{REPOSITORY}:pull"])["token"]
    forged = jwt.encode(jwt.decode(genuine, options={"verify_signature": False}), ec.generate_private_key(
        ec.SECP256R1()), algorithm="ES256", headers={"x5c": azure.x5c})
    url = f"{azure.base}/v2/{REPOSITORY}/tags/list"
    assert requests.get(url, headers={"Authorization": f"Bearer {forged}"}, timeout=30).status_code == 401
    assert requests.get(url, headers={"Authorization": f"Bearer {genuine}"}, timeout=30).status_code == 404


def test_the_cloud_sdks_are_loaded_only_when_a_token_is_needed():
    code = ("import django, sys; django.setup(); import backends.base, backends.gcp.artifact_registry, "
            "backends.azure.acr; print(sorted(m for m in sys.modules if m.startswith(('google', 'azure', 'msal'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True,
                         env={**os.environ, "DJANGO_SETTINGS_MODULE": "trainsvc.settings"})
    assert out.stdout.strip() == "[]"
