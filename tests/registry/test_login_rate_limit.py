"""Failed logins are counted per (user, source network) in the database and then refused with 429."""

from registry.models import LoginFailure
from tests.registry.conftest import basic, error_code


def attempt(client, password, address="203.0.113.7", path="/v2/token"):
    return client.get(path, HTTP_AUTHORIZATION=basic("acme", password), REMOTE_ADDR=address)


def test_failures_are_counted_then_refused_with_retry_after(client, operator, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 3
    for _ in range(3):
        assert attempt(client, "wrong").status_code == 401
    assert LoginFailure.objects.get().count == 3
    refused = attempt(client, operator.plaintext)  # even the right key waits out the window
    assert refused.status_code == 429
    assert error_code(refused) == "TOOMANYREQUESTS"
    assert 0 < int(refused["Retry-After"]) <= settings.TRAIN_REGISTRY_LOGIN_WINDOW_SECONDS + 1


def test_the_same_limit_applies_to_basic_on_v2(client, operator, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 2
    for _ in range(2):
        assert attempt(client, "wrong", path="/v2/").status_code == 401
    assert attempt(client, operator.plaintext, path="/v2/").status_code == 429


def test_another_source_network_is_not_blocked(client, operator, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 2
    for _ in range(2):
        attempt(client, "wrong", address="203.0.113.7")
    assert attempt(client, operator.plaintext, address="203.0.113.99").status_code == 429  # same /24
    assert attempt(client, operator.plaintext, address="198.51.100.1").status_code == 200


def test_the_window_resets_the_count(client, operator, settings):
    settings.TRAIN_REGISTRY_LOGIN_FAILURES = 2
    for _ in range(2):
        attempt(client, "wrong")
    LoginFailure.objects.update(window_start="2000-01-01T00:00:00Z")
    assert attempt(client, operator.plaintext).status_code == 200
    assert attempt(client, "wrong").status_code == 401
    assert LoginFailure.objects.get().count == 1
