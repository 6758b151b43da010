"""Artifact Registry as a mirror target: an image pushed to Train is copied with the impersonated
service account's token, end to end through a fake of Google's token endpoints in front of a real
Distribution registry that verifies every registry token; tokens that expire mid-copy are renewed; a
refusal is a permanent failure; invalid parameters are refused by name."""

import dataclasses
import json

import pytest

from backends.base import SpecError
from backends.common import renewing
from backends.gcp import artifact_registry
from backends.gcp.artifact_registry import artifact_registry_target
from registry.client import Credentials
from registry.mirror import mirror_ensure, mirror_run
from registry.models import MirrorState, Repository
from tests.fakecloud.registry_auth import pulled_digest, registry_auth_fake
from tests.registry.conftest import V2
from tests.registry.test_mirror_copier import push_layers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

SERVICE_ACCOUNT = "train-mirror@acme-project.iam.gserviceaccount.com"
TARGET_PATH = "acme-project/train-images/train/acme/trainer"


@pytest.fixture
def google(tmp_path, monkeypatch):
    """The fake, and Train's Application Default Credentials: a service-account key the fake knows."""
    with registry_auth_fake(tmp_path / "gcp", "gcp") as fake:
        adc = tmp_path / "application_default_credentials.json"
        adc.write_text(json.dumps(fake.application_default_credentials()))
        monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(adc))
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(fake.ca_bundle))
        artifact_registry._cache.clear()
        yield fake
        artifact_registry._cache.clear()


@pytest.fixture
def pushed(operator):
    layers = [f"artifact registry layer {i} ".encode() * 300 for i in range(5)]
    digest = push_layers(V2(operator), "acme/trainer", layers)
    return Repository.objects.get(name="acme/trainer"), digest


def target_for(fake, **overrides):
    params = {"project": "acme-project", "region": "europe-west1", "repository": "train-images",
              "service_account": SERVICE_ACCOUNT, "path": "train/acme/trainer",
              "iam_endpoint_url": fake.base, "registry_endpoint_url": fake.base, **overrides}
    return artifact_registry_target(**params)


def copy(pushed, target):
    repository, digest = pushed
    return mirror_run(mirror_id=mirror_ensure(repository=repository, digest=digest, target=target).pk, target=target)


def test_an_image_reaches_the_repository_with_the_impersonated_accounts_token(google, pushed):
    target = target_for(google)
    mirror = copy(pushed, target)
    assert mirror.state == MirrorState.DONE, mirror.error
    digest = pushed[1]
    assert pulled_digest(google, TARGET_PATH, digest) == digest
    # Pushed through the endpoint override; the job pulls it from the regional host all the same.
    assert target.url == google.base
    assert target.reference(digest) == f"europe-west1-docker.pkg.dev/{TARGET_PATH}@{digest}"
    assert target.label == "Artifact Registry"
    assert google.calls["generate_access_token"] == 1
    assert google.calls["artifact_registry_token"] >= 1
    assert sum(google.refused.values()) == 0


def test_a_later_copy_takes_the_cached_token_and_mounts_what_the_registry_holds(google, pushed):
    first = copy(pushed, target_for(google))
    assert first.state == MirrorState.DONE, first.error
    issued = google.issued_count("google-access")
    later = target_for(google, path="train/acme/copy")
    assert later.credentials().password in google.issued  # a target built afresh: no new token
    assert google.issued_count("google-access") == issued
    again = copy(pushed, later)
    assert again.state == MirrorState.DONE, again.error
    assert pulled_digest(google, "acme-project/train-images/train/acme/copy", pushed[1]) == pushed[1]
    # Mounting asks for the source repository's scope as well: at most one fresh token for it.
    assert google.issued_count("google-access") <= issued + 1


def test_the_default_target_is_the_regional_docker_host():
    target = artifact_registry_target(project="acme-project", region="us-central1", repository="train-images",
                                      service_account=SERVICE_ACCOUNT, path="train/acme/trainer")
    assert target.url == "https://us-central1-docker.pkg.dev"
    assert target.reference("sha256:" + "a" * 64) == (
        "us-central1-docker.pkg.dev/acme-project/train-images/train/acme/trainer@sha256:" + "a" * 64)


def test_tokens_that_expire_mid_copy_are_renewed(google, pushed):
    google.token_seconds = 2  # every token the fake issues lives 2 s; it refuses expired ones
    google.forward_delay_seconds = 0.3  # one blob at a time, ~3 requests each: the copy outlives them
    target = dataclasses.replace(target_for(google), parallel_blobs=1)
    mirror = copy(pushed, target)
    assert mirror.state == MirrorState.DONE, mirror.error
    assert pulled_digest(google, TARGET_PATH, pushed[1]) == pushed[1]
    assert google.issued_count("google-access") >= 2  # renewed during the copy
    assert sum(google.refused.values()) == 0  # and never presented once expired


def test_a_service_account_train_may_not_impersonate_fails_permanently(google, pushed):
    mirror = copy(pushed, target_for(google, service_account="someone-else@other-project.iam.gserviceaccount.com"))
    assert mirror.state == MirrorState.FAILED
    assert "someone-else@other-project.iam.gserviceaccount.com" in mirror.error
    assert "denied" in mirror.error
    assert google.refused["generate_access_token"] >= 1


def test_refused_application_default_credentials_fail_permanently(google, pushed):
    google.train_identity_revoked = True
    mirror = copy(pushed, target_for(google))
    assert mirror.state == MirrorState.FAILED
    assert "no access token" in mirror.error and "invalid_grant" in mirror.error


@pytest.mark.parametrize(("field", "value"), [
    ("project", "Acme_Project"), ("project", "abc"), ("project", "example.com:acme"),
    ("region", "europe west1"), ("region", "../v1"),
    ("repository", "Train-Images"), ("repository", "-images"), ("repository", "a" * 64),
    ("service_account", "mirror@gmail.com"), ("service_account", "a/b@p.iam.gserviceaccount.com"),
    ("service_account", "x@p.iam.gserviceaccount.com\x00"),
    ("path", "Train/Acme"), ("path", "train//acme"),
    ("iam_endpoint_url", "https://metadata.internal"), ("iam_endpoint_url", "http://iam.googleapis.com"),
    ("registry_endpoint_url", "https://127.0.0.1:1\\@europe-docker.pkg.dev"),
])
def test_invalid_parameters_are_refused_by_name(field, value):
    params = {"project": "acme-project", "region": "europe-west1", "repository": "train-images",
              "service_account": SERVICE_ACCOUNT, "path": "train/acme/trainer", field: value}
    with pytest.raises(SpecError) as refused:
        artifact_registry_target(**params)
    assert list(refused.value.errors) == [field]


def test_a_refused_token_is_replaced_at_most_once_per_interval(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(renewing.time, "monotonic", lambda: now[0])
    asked = []
    provider = renewing.RenewingProvider(lambda fresh: asked.append(fresh) or Credentials("u", str(len(asked))))
    provider(), provider(), provider()  # cached first, then one fresh token, then the cache again
    now[0] += renewing.FRESH_INTERVAL_SECONDS
    provider()
    assert asked == [False, True, False, True]
