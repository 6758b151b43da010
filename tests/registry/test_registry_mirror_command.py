"""`manage.py registry_mirror` copies an image of Train's registry into another registry by digest."""

import pytest
from django.core.management import CommandError, call_command

from tests.registry.test_mirror_copier import PASSWORD, USER, pulled, push_layers
from tests.support.distribution import distribution

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_command_copies_a_tag_by_digest_and_prints_the_reference(tmp_path, v2_operator, monkeypatch, capsys):
    digest = push_layers(v2_operator, "acme/trainer", [b"command layer" * 100])
    monkeypatch.setenv("TARGET_PASSWORD", PASSWORD)
    with distribution(tmp_path / "d", users={USER: PASSWORD}) as base:
        call_command("registry_mirror", "acme/trainer:v1", "--to", f"{base}/copies/trainer", "--username", USER,
                     "--password-env", "TARGET_PASSWORD")
        assert pulled(base, "copies/trainer", digest).headers["Docker-Content-Digest"] == digest
        host = base.split("://", 1)[1]
    assert capsys.readouterr().out.startswith(f"{host}/copies/trainer@{digest} (2 blobs, ")


def test_an_unknown_tag_is_a_clear_error(db, v2_operator):
    push_layers(v2_operator, "acme/trainer", [b"x"])
    with pytest.raises(CommandError, match="no tag 'nope'"):
        call_command("registry_mirror", "acme/trainer:nope", "--to", "http://127.0.0.1:9/x")


def test_a_refused_login_fails_with_the_registry_answer(tmp_path, v2_operator):
    push_layers(v2_operator, "acme/trainer", [b"y" * 10])
    with distribution(tmp_path / "d", users={USER: PASSWORD}) as base, pytest.raises(CommandError, match="401"):
        call_command("registry_mirror", "acme/trainer:v1", "--to", f"{base}/copies/trainer", "--username", USER)
