"""Pull tokens Train mints for its own jobs (the local backend's container engine): pull on one
repository, exchanged at the token endpoint as a Basic password, never more and never longer."""

import base64
import json

import jwt
from django.utils import timezone

from registry.tokens import pull_token_issue, token_verify
from tests.registry.conftest import basic


def test_a_pull_token_pulls_its_repository_and_nothing_else(v2_member, client):
    digest, _ = v2_member.push_image("acme/app", "v1")
    v2_member.push_image("acme/other", "v1")
    token, _, _ = pull_token_issue(account_id="acme", repository="acme/app")

    def get(path):
        return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}",
                          HTTP_ACCEPT="application/vnd.oci.image.manifest.v1+json")

    assert get(f"/v2/acme/app/manifests/{digest}").status_code == 200
    assert get("/v2/acme/other/manifests/v1").status_code == 401
    assert get("/v2/globex/app/manifests/v1").status_code == 403
    push = client.post("/v2/acme/app/blobs/uploads/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert push.status_code == 403  # a viewer's ceiling: pull only


def test_the_engine_exchanges_it_at_the_token_endpoint_for_no_more_than_it_grants(client, db, settings):
    token, _, _ = pull_token_issue(account_id="acme", repository="acme/app")
    response = client.get("/v2/token", {"service": "train-registry",
                                        "scope": ["repository:acme/app:pull,push", "repository:acme/other:pull"]},
                          HTTP_AUTHORIZATION=basic("acme", token))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["scope"] == "repository:acme/app:pull"
    exchanged = token_verify(body["token"])
    assert exchanged.access == {"repository:acme/app": frozenset({"pull"})}
    # Never valid longer than the token it came from, however often it is exchanged again.
    assert exchanged.expires_at <= token_verify(token).expires_at


def test_a_pull_token_for_another_account_or_a_forged_one_is_refused(client, db):
    token, _, _ = pull_token_issue(account_id="acme", repository="acme/app")
    assert client.get("/v2/token", {"scope": "repository:globex/app:pull"},
                      HTTP_AUTHORIZATION=basic("globex", token)).status_code == 401
    _header, payload, _ = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["access"][0]["actions"] = ["pull", "push"]
    forged = jwt.encode({**claims, "exp": timezone.now() + timezone.timedelta(hours=1)}, "k" * 32, algorithm="HS256")
    assert client.get("/v2/token", {"scope": "repository:acme/app:push"},
                      HTTP_AUTHORIZATION=basic("acme", forged)).status_code == 401
