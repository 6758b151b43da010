"""API keys: stored as key id + SHA-256 of the secret, shown once, revocable, expiring, `last_used_at`."""

import hashlib
import io
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from trainsvc.accounts.models import KEY_RE, ApiKey


def list_jobs(api, plaintext, account="acme"):
    return api.get("/v1/jobs", HTTP_X_API_KEY=plaintext, HTTP_X_SELECTED_ACCOUNT_ID=account)


def raw_row(key) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {ApiKey._meta.db_table} WHERE id = %s", [key.pk])  # noqa: S608
        return cursor.fetchone()


def test_the_database_holds_the_key_id_and_a_sha256_of_the_secret_never_the_secret(operator):
    key_id, secret = KEY_RE.match(operator.plaintext).groups()
    row = raw_row(operator.key)
    assert not any(secret in str(value) or operator.plaintext in str(value) for value in row)
    stored = ApiKey.objects.get(pk=operator.key.pk)
    assert stored.key_id == key_id
    assert stored.secret_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in str(stored)


def test_create_api_key_prints_the_key_once_as_its_last_line(db, api, acme):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_key", "acme", stdout=out, stderr=err)
    plaintext = out.getvalue().splitlines()[-1]
    assert KEY_RE.match(plaintext)
    assert plaintext not in err.getvalue()
    assert list_jobs(api, plaintext).status_code == 200
    key = ApiKey.objects.get(key_id=KEY_RE.match(plaintext)[1])
    assert not any(plaintext.split("_", 2)[2] in str(value) for value in raw_row(key))


def test_keys_do_not_repeat(operator):
    _, second = ApiKey.issue(user=operator.key.user)
    assert KEY_RE.match(second)
    assert second != operator.plaintext
    assert second.split("_")[1] != operator.plaintext.split("_")[1]


def test_revocation_takes_effect_on_the_next_request(api, operator):
    assert list_jobs(api, operator.plaintext).status_code == 200
    assert operator.key.revoke() is True
    assert list_jobs(api, operator.plaintext).status_code == 401


def test_revoking_twice_reports_that_the_key_was_already_revoked(operator):
    assert operator.key.revoke() is True
    first = ApiKey.objects.get(pk=operator.key.pk).revoked_at
    assert operator.key.revoke() is False
    assert ApiKey.objects.get(pk=operator.key.pk).revoked_at == first


def test_a_key_works_until_it_expires(api, operator):
    user = operator.key.user
    key, plaintext = ApiKey.issue(user=user, expires_at=timezone.now() + timedelta(hours=1))
    assert list_jobs(api, plaintext).status_code == 200
    ApiKey.objects.filter(pk=key.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert list_jobs(api, plaintext).status_code == 401


def test_a_key_expiring_exactly_now_is_no_longer_active(operator):
    now = timezone.now()
    operator.key.expires_at = now
    assert operator.key.is_active(now=now) is False
    assert operator.key.is_active(now=now - timedelta(microseconds=1)) is True


def test_a_deactivated_users_keys_stop_working(api, operator):
    user = operator.key.user
    user.is_active = False
    user.save(update_fields=["is_active"])
    assert list_jobs(api, operator.plaintext).status_code == 401


def test_first_use_records_last_used_at(api, operator):
    assert operator.key.last_used_at is None
    before = timezone.now()
    assert list_jobs(api, operator.plaintext).status_code == 200
    assert ApiKey.objects.get(pk=operator.key.pk).last_used_at >= before


def test_last_used_at_is_not_rewritten_within_a_minute(api, operator):
    recent = timezone.now() - timedelta(seconds=50)
    ApiKey.objects.filter(pk=operator.key.pk).update(last_used_at=recent)
    assert list_jobs(api, operator.plaintext).status_code == 200
    assert ApiKey.objects.get(pk=operator.key.pk).last_used_at == recent


def test_last_used_at_is_rewritten_once_a_minute_has_passed(api, operator):
    stale = timezone.now() - timedelta(seconds=61)
    ApiKey.objects.filter(pk=operator.key.pk).update(last_used_at=stale)
    assert list_jobs(api, operator.plaintext).status_code == 200
    assert ApiKey.objects.get(pk=operator.key.pk).last_used_at > stale + timedelta(seconds=60)


def test_a_rejected_key_does_not_record_a_use(api, operator):
    operator.key.revoke()
    list_jobs(api, operator.plaintext)
    assert ApiKey.objects.get(pk=operator.key.pk).last_used_at is None


def test_the_right_key_id_with_a_wrong_secret_is_401(api, operator):
    key_id, secret = KEY_RE.match(operator.plaintext).groups()
    wrong = f"trn_{key_id}_{secret[:-1]}{'A' if secret[-1] != 'A' else 'B'}"
    response = list_jobs(api, wrong)
    assert response.status_code == 401
    assert ApiKey.objects.get(pk=operator.key.pk).last_used_at is None


def test_an_unknown_key_id_is_401(api, operator):
    _, secret = KEY_RE.match(operator.plaintext).groups()
    assert list_jobs(api, f"trn_zzzzzzzzzzzz_{secret}").status_code == 401


@pytest.mark.parametrize("presented", [
    "", " ", "trn_", "Bearer x", "trn_abcdefghijkl_short", "TRN_ABCDEFGHIJKL_" + "a" * 40,
])
def test_malformed_keys_are_401(api, operator, presented):
    assert list_jobs(api, presented).status_code == 401


def test_the_key_with_surrounding_whitespace_is_401(api, operator):
    assert list_jobs(api, operator.plaintext + " ").status_code == 401
    assert list_jobs(api, " " + operator.plaintext).status_code == 401


def test_a_401_names_the_header_scheme_and_is_json(api, db):
    response = list_jobs(api, "nope")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'ApiKey header="x-api-key"'
    assert response.json()["detail"]
