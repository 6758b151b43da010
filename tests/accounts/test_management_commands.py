"""`create_account` and `create_api_key`: what an operator runs to set up an account and hand out keys."""

import io

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from trainsvc.accounts.models import KEY_RE, Account, ApiKey, Membership, Role


def run(*args) -> str:
    out = io.StringIO()
    call_command(*args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def issue(*args) -> tuple[str, ApiKey]:
    plaintext = run("create_api_key", *args).splitlines()[-1]
    return plaintext, ApiKey.objects.select_related("user").get(key_id=KEY_RE.match(plaintext)[1])


def role_of(key: ApiKey, account_id="acme") -> str:
    return Membership.objects.get(user=key.user, account_id=account_id).role


def test_create_account_creates_it_and_prints_its_id(db):
    assert run("create_account", "acme-research", "--name", "Acme Research").strip() == "acme-research"
    assert Account.objects.get(id="acme-research").name == "Acme Research"


def test_create_account_twice_keeps_one_account(db):
    run("create_account", "acme", "--name", "First")
    assert run("create_account", "acme", "--name", "Second").strip() == "acme"
    assert list(Account.objects.values_list("id", "name")) == [("acme", "First")]


@pytest.mark.parametrize("account_id", ["Acme", "acme_1", "-acme", "acme-", "ac--me", "ac me", "a" * 64, "acme/x",
                                        "acme\u0661"])
def test_create_account_rejects_invalid_ids(db, account_id):
    with pytest.raises(CommandError, match="not a valid account id"):
        run("create_account", "--", account_id)  # "--": "-acme" is an id here, not an option
    assert not Account.objects.exists()


def test_create_account_accepts_the_longest_id(db):
    assert run("create_account", "a" * 63).strip() == "a" * 63


def test_create_api_key_defaults_to_an_admin_key_of_the_service_user(api, acme):
    plaintext, key = issue("acme")
    assert key.user.username == "svc-acme"
    assert not key.user.has_usable_password()
    assert role_of(key) == Role.ADMIN
    response = api.put("/v1/backends/local", {"config": {}}, format="json",
                       HTTP_X_API_KEY=plaintext, HTTP_X_SELECTED_ACCOUNT_ID="acme")
    assert response.status_code == 200


def test_create_api_key_with_role_viewer_reads_but_cannot_write(api, acme):
    plaintext, key = issue("acme", "--role", "viewer")
    assert role_of(key) == Role.VIEWER
    headers = {"HTTP_X_API_KEY": plaintext, "HTTP_X_SELECTED_ACCOUNT_ID": "acme"}
    assert api.get("/v1/jobs", **headers).status_code == 200
    assert api.post("/v1/jobs", {}, format="json", **headers).status_code == 403


def test_the_service_user_is_reused_for_keys_of_the_same_role(acme):
    _, first = issue("acme")
    _, second = issue("acme")
    assert first.pk != second.pk
    assert first.user == second.user
    assert get_user_model().objects.filter(username__startswith="svc-acme").count() == 1


def test_issuing_a_viewer_key_leaves_the_admin_key_admin(api, acme):
    _, admin_key = issue("acme")
    _, viewer_key = issue("acme", "--role", "viewer")
    assert role_of(admin_key) == Role.ADMIN
    assert role_of(viewer_key) == Role.VIEWER


def test_issuing_an_admin_key_does_not_promote_an_earlier_viewer_key(api, acme):
    viewer_plaintext, viewer_key = issue("acme", "--role", "viewer")
    issue("acme", "--role", "admin")
    assert role_of(viewer_key) == Role.VIEWER
    response = api.put("/v1/backends/local", {"config": {}}, format="json",
                       HTTP_X_API_KEY=viewer_plaintext, HTTP_X_SELECTED_ACCOUNT_ID="acme")
    assert response.status_code == 403


def test_service_users_of_similar_accounts_never_collide(db):
    run("create_account", "acme")
    run("create_account", "acme-viewer")
    _, acme_viewer = issue("acme", "--role", "viewer")
    _, other_admin = issue("acme-viewer")
    assert acme_viewer.user != other_admin.user
    assert not Membership.objects.filter(user=other_admin.user, account_id="acme").exists()


def test_create_api_key_for_an_existing_user_makes_them_a_member(acme):
    user = get_user_model().objects.create(username="dana")
    _, key = issue("acme", "--user", "dana", "--role", "member")
    assert key.user == user
    assert role_of(key) == Role.MEMBER


def test_a_new_key_for_an_existing_member_keeps_their_role_unless_one_is_given(member):
    _, key = issue("acme", "--user", "max")
    assert role_of(key) == Role.MEMBER
    _, key = issue("acme", "--user", "max", "--role", "viewer")
    assert role_of(key) == Role.VIEWER


def test_create_api_key_for_an_unknown_user_fails_and_issues_nothing(acme):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        run("create_api_key", "acme", "--user", "nobody")
    assert not ApiKey.objects.exists()


def test_create_api_key_for_an_unknown_account_fails_and_names_create_account(db):
    with pytest.raises(CommandError, match="create_account"):
        run("create_api_key", "nope")
    assert not ApiKey.objects.exists()
    assert not get_user_model().objects.exists()


def test_create_api_key_rejects_an_unknown_role(acme):
    with pytest.raises(CommandError):
        run("create_api_key", "acme", "--role", "owner")
    assert not ApiKey.objects.exists()
