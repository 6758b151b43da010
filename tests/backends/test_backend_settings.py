"""Per-backend settings follow one convention, TRAIN_<BACKEND>_<NAME>, with the names documented
before it kept as aliases, and a bad value is refused naming the variable."""

import os
import subprocess
import sys

import pytest
from django.core.exceptions import ImproperlyConfigured

from backends.aws.sagemaker import SageMakerBackend
from backends.aws.session import aws_read_timeout_seconds
from backends.common.settings import poll_bounds, setting_name
from tests.support.processes import ROOT


def test_the_setting_name_of_a_hyphenated_backend():
    assert setting_name("vertex-ai", "POLL_SECONDS") == "TRAIN_VERTEX_AI_POLL_SECONDS"


def test_a_backend_reads_its_poll_bounds_from_its_own_variable(monkeypatch):
    monkeypatch.setenv("TRAIN_AZURE_ML_POLL_SECONDS", "10, 120")
    assert poll_bounds("azure-ml") == (10, 120)
    assert poll_bounds("vertex-ai") == (30, 300)


def test_sagemaker_keeps_its_documented_variable(monkeypatch):
    monkeypatch.setenv("TRAIN_SAGEMAKER_POLL_SECONDS", "2,20")
    assert SageMakerBackend.poll_interval_bounds == (2, 20)


def test_a_django_setting_override_still_wins(monkeypatch, settings):
    monkeypatch.setenv("TRAIN_SAGEMAKER_POLL_SECONDS", "2,20")
    settings.TRAIN_SAGEMAKER_POLL_SECONDS = (5, 50)
    assert SageMakerBackend.poll_interval_bounds == (5, 50)


def test_the_aws_read_timeout_alias_works_and_the_conventional_name_wins(monkeypatch, settings):
    del settings.TRAIN_AWS_READ_TIMEOUT_SECONDS  # the fixture's test value
    monkeypatch.setenv("TRAIN_AWS_READ_TIMEOUT_SECONDS", "7")
    assert aws_read_timeout_seconds() == 7
    monkeypatch.setenv("TRAIN_SAGEMAKER_READ_TIMEOUT_SECONDS", "9")
    assert aws_read_timeout_seconds() == 9


@pytest.mark.parametrize("value", ["30", "300,30", "0,10", "a,b", "1,2,3"])
def test_bad_poll_bounds_name_the_variable(monkeypatch, value):
    monkeypatch.setenv("TRAIN_SAGEMAKER_POLL_SECONDS", value)
    with pytest.raises(ImproperlyConfigured, match="TRAIN_SAGEMAKER_POLL_SECONDS"):
        SageMakerBackend.poll_interval_bounds  # noqa: B018 (the property reads the setting)


def test_manage_py_check_refuses_a_bad_backend_setting():
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRAIN_")}
    env.update(DJANGO_SETTINGS_MODULE="trainsvc.settings", TRAIN_AWS_READ_TIMEOUT_SECONDS="-1")
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "TRAIN_AWS_READ_TIMEOUT_SECONDS" in result.stderr
