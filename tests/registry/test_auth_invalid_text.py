"""NUL bytes, lone surrogates and other text no account id or key contains, wherever credentials are
read (Basic username and password, the Authorization header, the token form): 401 or 400 with a
clear message, never a database error. Run on PostgreSQL, which refuses NUL in text."""

import base64

import pytest

from registry.models import LoginFailure
from tests.registry.conftest import basic

pytestmark = pytest.mark.django_db

BAD_USERNAMES = ["ac\x00me", "acme\x00", "\x00", "ACME", " acme", "a" * 5000, "acme/../x", "ac\ufffdme"]


@pytest.mark.parametrize("username", BAD_USERNAMES)
@pytest.mark.parametrize("path", ["/v2/token", "/v2/"])
def test_an_invalid_basic_username_is_401(client, operator, username, path):
    response = client.get(path, HTTP_AUTHORIZATION=basic(username, operator.plaintext))
    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    counted = set(LoginFailure.objects.values_list("key", flat=True))
    assert counted == {"addr:127.0.0.1", f"key:{operator.key.key_id}"}  # never the username


@pytest.mark.parametrize("password", ["\x00", f"trn_{'a' * 12}_\x00", "x\x00y", "\ud800".encode(
    "utf-8", "surrogatepass").decode("latin-1")])
def test_an_invalid_basic_password_is_401(client, operator, password):
    response = client.get("/v2/token", HTTP_AUTHORIZATION=basic("acme", password))
    assert response.status_code == 401


def raw_basic(payload: bytes) -> str:
    return "Basic " + base64.b64encode(payload).decode()


@pytest.mark.parametrize("header", [
    pytest.param("Basic \x00", id="nul-in-base64"),
    pytest.param(raw_basic(b"acme:\xed\xa0\x80"), id="surrogate-bytes"),
    pytest.param(raw_basic(b"\xff\xfe:key"), id="not-utf-8"),
    pytest.param("Bearer \x00abc", id="nul-in-bearer"),
    pytest.param("Bearer \ud800", id="lone-surrogate-in-bearer"),
    pytest.param("Bearer é.é.é", id="latin-1-bearer"),
    pytest.param("\x00", id="nul-scheme"),
])
@pytest.mark.parametrize("path", ["/v2/token", "/v2/", "/v2/acme/app/tags/list"])
def test_an_invalid_authorization_header_is_401(client, operator, header, path):
    response = client.get(path, HTTP_AUTHORIZATION=header)
    assert response.status_code == 401
    assert response.json()["errors"][0]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("field", ["username", "password"])
def test_invalid_text_in_the_token_form_is_401(client, operator, field):
    form = {"grant_type": "password", "username": "acme", "password": operator.plaintext}
    form[field] = form[field][:3] + "\x00" + form[field][3:]
    response = client.post("/v2/token", form)
    assert response.status_code == 401
    assert "invalid username" in response.json()["errors"][0]["message"]


def test_invalid_text_in_the_grant_type_is_400(client, operator):
    response = client.post("/v2/token", {"grant_type": "pass\x00word", "username": "acme",
                                         "password": operator.plaintext})
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


@pytest.mark.parametrize("scope", ["repository:acme/a\x00pp:pull", "repository:acme/app:pu\x00ll", "\x00"])
def test_invalid_text_in_a_scope_is_refused_or_grants_nothing_for_it(client, operator, scope):
    # In the query string it is refused outright, as any unsafe query text is; in a POSTed form the
    # scope item is dropped and the token grants nothing for it.
    response = client.get("/v2/token", {"scope": scope}, HTTP_AUTHORIZATION=basic("acme", operator.plaintext))
    assert response.status_code == 400
    assert "token" not in response.json()
    posted = client.post("/v2/token", {"grant_type": "password", "username": "acme",
                                       "password": operator.plaintext, "scope": scope})
    assert posted.status_code == 200 and posted.json()["scope"] == ""
