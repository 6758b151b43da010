"""Tokens are checked on every request."""

import datetime as dt

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from django.utils import timezone

from registry.tokens import signing_keys
from tests.registry.conftest import error_code


def forged(**overrides):
    """A token signed with Train's key; a timedelta in `overrides` is a time relative to now."""
    private, _, kid = signing_keys()
    now = timezone.now()
    claims = {"iss": "train", "sub": "acme", "aud": "train-registry", "iat": now, "nbf": now,
              "exp": now + dt.timedelta(minutes=5), "jti": "j", "key": overrides.pop("key"),
              "access": [{"type": "repository", "name": "acme/app", "actions": ["pull"]}]}
    claims.update({claim: now + value if isinstance(value, dt.timedelta) else value
                   for claim, value in overrides.items()})
    return jwt.encode(claims, private, algorithm="ES256", headers={"kid": kid})


def tags(client, token, name="acme/app"):
    return client.get(f"/v2/{name}/tags/list", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_a_valid_token_reads_its_repository(client, operator, v2_operator):
    v2_operator.push_image("acme/app", "v1")
    assert tags(client, forged(key=operator.key.pk)).status_code == 200


# Relative times: a time taken at collection would no longer be early by the time the test runs.
@pytest.mark.parametrize("overrides", [
    {"exp": -dt.timedelta(minutes=5)},
    {"nbf": dt.timedelta(minutes=5)},
    {"aud": "another-registry"},
    {"iss": "someone-else"},
])
def test_expired_early_or_foreign_tokens_are_401(client, operator, overrides):
    response = tags(client, forged(key=operator.key.pk, **overrides))
    assert response.status_code == 401
    assert 'error="invalid_token"' in response["WWW-Authenticate"]


def test_alg_none_is_401(client, operator):
    token = jwt.encode({"sub": "acme", "aud": "train-registry", "key": operator.key.pk, "access": []}, None,
                       algorithm="none")
    assert tags(client, token).status_code == 401


def test_hs256_signed_with_the_public_key_is_401(client, operator):
    _, public, _ = signing_keys()
    pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = jwt.utils.base64url_encode(b'{"alg":"HS256","typ":"JWT"}')
    payload = jwt.utils.base64url_encode(b'{"sub":"acme","aud":"train-registry","iss":"train"}')
    import hashlib
    import hmac

    signature = jwt.utils.base64url_encode(hmac.new(pem, header + b"." + payload, hashlib.sha256).digest())
    assert tags(client, (header + b"." + payload + b"." + signature).decode()).status_code == 401


def test_token_for_repository_a_used_on_repository_b_is_refused(client, operator, v2_operator):
    v2_operator.push_image("acme/other", "v1")
    response = tags(client, forged(key=operator.key.pk), name="acme/other")
    assert response.status_code == 401
    assert 'error="insufficient_scope"' in response["WWW-Authenticate"]


def test_token_naming_another_accounts_repository_is_denied(client, operator):
    token = forged(key=operator.key.pk, access=[{"type": "repository", "name": "globex/app", "actions": ["pull"]}])
    response = tags(client, token, name="globex/app")
    assert response.status_code == 403
    assert error_code(response) == "DENIED"


def test_key_revoked_after_issue_stops_the_token(client, operator, v2_operator):
    v2_operator.push_image("acme/app", "v1")
    token = forged(key=operator.key.pk)
    assert tags(client, token).status_code == 200
    operator.key.revoke()
    assert tags(client, token).status_code == 401


def test_membership_removed_after_issue_stops_the_token(client, operator, v2_operator):
    from trainsvc.accounts.models import Membership

    v2_operator.push_image("acme/app", "v1")
    token = forged(key=operator.key.pk)
    Membership.objects.filter(user=operator.key.user, account_id="acme").delete()
    assert tags(client, token).status_code == 401


def test_a_viewer_demoted_after_issue_loses_push(client, member, v2_member):
    from trainsvc.accounts.models import Membership

    token = v2_member.token("repository:acme/app:pull,push")
    Membership.objects.filter(user=member.key.user).update(role="viewer")
    response = client.post("/v2/acme/app/blobs/uploads/", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 403
