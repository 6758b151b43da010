"""Failed logins are counted per presented key id and per client address, then answered with 429;
the right key always gets in. Rows stay bounded: one per key id that exists, one per address."""

import pytest

from registry.models import LoginFailure
from tests.registry.conftest import basic, error_code

pytestmark = pytest.mark.django_db

WRONG = "not-a-key"


def attempt(client, password, address="203.0.113.7", path="/v2/token", username="acme", **headers):
    return client.get(path, HTTP_AUTHORIZATION=basic(username, password), REMOTE_ADDR=address, **headers)


def wrong_secret(caller) -> str:
    """The caller's key id with a wrong secret: what a stale stored password looks like."""
    return f"trn_{caller.key.key_id}_{'x' * 40}"


def test_a_correct_key_is_never_refused_by_the_limit(client, operator, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 3
    for _ in range(5):  # a stranger behind the same load balancer, guessing at the public account id
        attempt(client, WRONG)
    assert attempt(client, WRONG).status_code == 429
    assert attempt(client, operator.plaintext).status_code == 200
    assert attempt(client, operator.plaintext, path="/v2/").status_code == 200
    for _ in range(5):
        attempt(client, wrong_secret(operator), address="198.51.100.1")
    assert attempt(client, operator.plaintext, address="198.51.100.1").status_code == 200


def test_failures_from_an_address_are_counted_then_refused_with_retry_after(client, operator, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 3
    for _ in range(3):
        assert attempt(client, WRONG).status_code == 401
    assert LoginFailure.objects.get(key="addr:203.0.113.7").count == 3
    refused = attempt(client, WRONG)
    assert refused.status_code == 429
    assert error_code(refused) == "TOOMANYREQUESTS"
    assert 0 < int(refused["Retry-After"]) <= settings.TRAIN_REGISTRY_LOGIN_WINDOW_SECONDS + 1
    assert attempt(client, WRONG, address="203.0.113.8").status_code == 401  # a neighbour is not blocked


def test_failures_of_a_key_id_are_counted_from_every_address(client, operator, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 3
    for n in range(3):
        assert attempt(client, wrong_secret(operator), address=f"198.51.100.{n}").status_code == 401
    assert LoginFailure.objects.get(key=f"key:{operator.key.key_id}").count == 3
    assert attempt(client, wrong_secret(operator), address="192.0.2.50").status_code == 429
    assert attempt(client, operator.plaintext, address="192.0.2.50").status_code == 200


def test_the_same_limit_applies_to_basic_on_v2_and_the_form_post(client, operator, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 2
    for _ in range(2):
        assert attempt(client, WRONG, path="/v2/").status_code == 401
    assert attempt(client, WRONG, path="/v2/").status_code == 429
    form = client.post("/v2/token", {"grant_type": "password", "username": "acme", "password": WRONG},
                       REMOTE_ADDR="203.0.113.7")
    assert form.status_code == 429


def test_unknown_usernames_and_key_ids_create_no_rows_of_their_own(client, db, settings):
    for n in range(30):
        attempt(client, f"trn_{'a' * 11}{'bcdefghijklmnopqrstuvwxyz234567'[n]}_{'x' * 40}", username=f"made-up-{n}")
    assert list(LoginFailure.objects.values_list("key", flat=True)) == ["addr:203.0.113.7"]


def test_ipv6_clients_are_counted_per_64(client, db, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 2
    attempt(client, WRONG, address="2001:db8:1:2::1")
    attempt(client, WRONG, address="2001:db8:1:2:ffff::9")
    assert attempt(client, WRONG, address="2001:db8:1:2::77").status_code == 429
    assert attempt(client, WRONG, address="2001:db8:1:3::1").status_code == 401


def test_behind_a_trusted_proxy_each_client_is_counted_alone(client, operator, settings):
    settings.TRAIN_TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 2
    for _ in range(2):
        attempt(client, WRONG, address="10.0.0.5", HTTP_X_FORWARDED_FOR="192.0.2.1, 198.51.100.4")
    assert LoginFailure.objects.get(key="addr:198.51.100.4").count == 2
    assert not LoginFailure.objects.filter(key="addr:10.0.0.5").exists()
    assert attempt(client, WRONG, address="10.0.0.6", HTTP_X_FORWARDED_FOR="198.51.100.4").status_code == 429
    assert attempt(client, WRONG, address="10.0.0.6", HTTP_X_FORWARDED_FOR="198.51.100.5").status_code == 401


def test_a_client_that_is_not_a_trusted_proxy_cannot_pick_its_address(client, db, settings):
    settings.TRAIN_TRUSTED_PROXIES = ["10.0.0.0/8"]
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 2
    for n in range(3):
        attempt(client, WRONG, address="203.0.113.9", HTTP_X_FORWARDED_FOR=f"192.0.2.{n}")
    assert list(LoginFailure.objects.values_list("key", "count")) == [("addr:203.0.113.9", 2)]


def test_the_window_resets_the_count(client, operator, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 2
    for _ in range(2):
        attempt(client, WRONG)
    LoginFailure.objects.update(window_start="2000-01-01T00:00:00Z")
    assert attempt(client, WRONG).status_code == 401
    assert LoginFailure.objects.get().count == 1


def test_rows_of_long_finished_windows_are_dropped(client, db, settings):
    for n in range(5):
        attempt(client, WRONG, address=f"192.0.2.{n}")
    LoginFailure.objects.update(window_start="2000-01-01T00:00:00Z")
    attempt(client, WRONG, address="198.51.100.9")
    assert list(LoginFailure.objects.values_list("key", flat=True)) == ["addr:198.51.100.9"]
