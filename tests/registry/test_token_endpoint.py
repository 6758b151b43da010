"""GET/POST /v2/token: who gets a token, and for what."""

import base64

import jwt
import pytest

from tests.registry.conftest import basic, error_code


def claims(token):
    return jwt.decode(token, options={"verify_signature": False})


def grant(client, caller, *scopes, username=None):
    response = client.get("/v2/token", {"scope": list(scopes), "service": "train-registry"},
                          HTTP_AUTHORIZATION=basic(username or caller.account.id, caller.plaintext))
    assert response.status_code == 200, response.content
    return response.json()


def test_token_is_a_short_lived_es256_jwt_bound_to_service_and_account(client, operator):
    body = grant(client, operator, "repository:acme/app:pull,push")
    assert body["token"] == body["access_token"]
    assert 60 <= body["expires_in"] <= 900
    header = jwt.get_unverified_header(body["token"])
    assert header["alg"] == "ES256" and header["kid"]
    token = claims(body["token"])
    assert token["aud"] == "train-registry" and token["sub"] == "acme" and token["iss"] == "train"
    assert token["exp"] - token["iat"] == body["expires_in"] and token["jti"]
    assert token["access"] == [{"type": "repository", "name": "acme/app", "actions": ["pull", "push"]}]


def test_viewer_is_granted_pull_only(client, viewer):
    token = claims(grant(client, viewer, "repository:acme/app:pull,push,delete")["token"])
    assert token["access"] == [{"type": "repository", "name": "acme/app", "actions": ["pull"]}]


def test_member_is_granted_pull_and_push_but_not_delete(client, member):
    token = claims(grant(client, member, "repository:acme/app:*")["token"])
    assert token["access"][0]["actions"] == ["pull", "push"]


@pytest.mark.parametrize("scope", [
    "repository:globex/app:pull,push",  # another tenant
    "repository:*:push",                # wildcard name
    "repository:acme:pull",             # the account itself is not a repository
    "repository:Acme/App:pull",         # not in the grammar
    "plugin:acme/app:pull",             # unknown type
    "repository(plugin):acme/app:pull",
    "repository:acme/app",              # no actions
    "nonsense",
])
def test_scopes_outside_the_ceiling_are_dropped_not_errors(client, operator, scope):
    token = claims(grant(client, operator, scope)["token"])
    assert token["access"] == []


def test_duplicate_and_space_separated_scopes_merge(client, operator):
    body = grant(client, operator, "repository:acme/app:pull", "repository:acme/app:push repository:acme/b:pull")
    access = {entry["name"]: entry["actions"] for entry in claims(body["token"])["access"]}
    assert access == {"acme/app": ["pull", "push"], "acme/b": ["pull"]}


def test_catalog_scope_is_granted_for_the_callers_own_account(client, operator):
    token = claims(grant(client, operator, "registry:catalog:*")["token"])
    assert token["access"] == [{"type": "registry", "name": "catalog", "actions": ["*"]}]


def test_empty_scope_gives_a_token_with_no_access(client, operator):
    assert claims(grant(client, operator)["token"])["access"] == []


def test_account_query_parameter_is_ignored(client, operator):
    response = client.get("/v2/token", {"account": "globex", "scope": "repository:globex/app:pull"},
                          HTTP_AUTHORIZATION=basic("acme", operator.plaintext))
    token = claims(response.json()["token"])
    assert token["sub"] == "acme" and token["access"] == []


def test_no_basic_credentials_is_401_with_challenge(client, db):
    response = client.get("/v2/token")
    assert response.status_code == 401
    assert error_code(response) == "UNAUTHORIZED"
    assert response["WWW-Authenticate"].startswith("Basic ")


@pytest.mark.parametrize("header", [
    "Basic !!!notbase64",
    "Basic " + base64.b64encode(b"no-colon-here").decode(),
    "Basic " + base64.b64encode(b"acme:\xff\xfe").decode(),
    "Bearer something",
    "Basic",
])
def test_malformed_basic_credentials_are_401(client, operator, header):
    assert client.get("/v2/token", HTTP_AUTHORIZATION=header).status_code == 401


def test_wrong_key_unknown_account_and_non_member_are_all_401(client, operator, outsider):
    for username, password in [("acme", "trn_aaaaaaaaaaaa_" + "x" * 40), ("nobody", operator.plaintext),
                               ("globex", operator.plaintext), ("acme", "")]:
        response = client.get("/v2/token", HTTP_AUTHORIZATION=basic(username, password))
        assert response.status_code == 401, (username, response.content)


def test_oauth2_password_grant(client, member):
    response = client.post("/v2/token", {"grant_type": "password", "username": "acme", "password": member.plaintext,
                                         "service": "train-registry", "client_id": "docker",
                                         "scope": "repository:acme/app:pull,push repository:globex/x:pull"})
    assert response.status_code == 200
    body = response.json()
    assert body["scope"] == "repository:acme/app:pull,push"
    assert "refresh_token" not in body
    assert claims(body["access_token"])["sub"] == "acme"


def test_oauth2_password_grant_with_a_bad_key_is_401(client, member):
    response = client.post("/v2/token", {"grant_type": "password", "username": "acme", "password": "nope"})
    assert response.status_code == 401


def test_oauth2_refresh_token_grant_is_unsupported(client, member):
    response = client.post("/v2/token", {"grant_type": "refresh_token", "refresh_token": "x"})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"
