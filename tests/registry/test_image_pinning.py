"""POST /v1/jobs with an image in Train's registry records the digest its tag points at then; unknown
repositories, tags and digests are a 400 naming `image`."""

import pytest

from jobs.images import image_resolve
from jobs.models import Job

HOST = "localhost:5999"


@pytest.fixture(autouse=True)
def registry_host(settings):
    settings.TRAIN_REGISTRY_HOST = HOST


def submit(api, caller, image):
    body = {"name": "pinned", "backend": "local", "image": image, "command": ["true"]}
    return api.post("/v1/jobs", body, format="json", **caller.headers)


def test_job_records_the_digest_and_keeps_it_when_the_tag_moves(api, member, v2_operator):
    first, _ = v2_operator.push_image("acme/app", "v1", seed="1")
    response = submit(api, member, f"{HOST}/acme/app:v1")
    assert response.status_code == 201, response.content
    assert response.json()["image_digest"] == first
    second, _ = v2_operator.push_image("acme/app", "v1", seed="2")
    assert second != first
    assert Job.objects.get(pk=response.json()["id"]).image_digest == first


@pytest.mark.parametrize("host", ["localhost:5999", "127.0.0.1:5999"])
def test_loopback_spellings_are_the_same_registry(member, v2_operator, host):
    digest, _ = v2_operator.push_image("acme/app", "latest")
    assert image_resolve(account=member.account, reference=f"{host}/acme/app").digest == digest


def test_digest_reference_is_checked(member, v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    assert image_resolve(account=member.account, reference=f"{HOST}/acme/app@{digest}").digest == digest
    assert image_resolve(account=member.account, reference=f"{HOST}/acme/app:v1@{digest}").digest == digest


@pytest.mark.parametrize("image", [
    f"{HOST}/acme/nothing:v1",
    f"{HOST}/acme/app:v404",
    f"{HOST}/acme/app@sha256:" + "8" * 64,
    f"{HOST}/globex/app:v1",  # another account's repository is not even named as existing
])
def test_unknown_repository_tag_or_digest_is_400_on_image(api, member, v2_operator, v2_outsider, image):
    v2_operator.push_image("acme/app", "v1")
    v2_outsider.push_image("globex/app", "v1")
    response = submit(api, member, image)
    assert response.status_code == 400
    assert "image" in response.json()
    assert not Job.objects.exists()


def test_other_registries_pass_through_unpinned(member):
    resolved = image_resolve(account=member.account, reference="ghcr.io/acme/app:v1")
    assert (resolved.image, resolved.digest) == ("ghcr.io/acme/app:v1", "")
