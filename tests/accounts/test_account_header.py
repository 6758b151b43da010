"""`x-selected-account-id` is matched exactly: anything but a well-formed account id is a 400 naming the
header, and nothing near "acme" is ever treated as acme."""

import pytest

from jobs.models import Job
from tests.support.jobs import job_body, queued_tasks

HEADER = "x-selected-account-id"

MALFORMED = [
    pytest.param(" acme", id="leading-space"),
    pytest.param("acme ", id="trailing-space"),
    pytest.param("ACME", id="upper-case"),
    pytest.param("Acme", id="capitalised"),
    pytest.param("acme,acme", id="two-headers-joined"),
    pytest.param("acme, acme", id="two-headers-joined-with-space"),
    pytest.param("ac me", id="inner-space"),
    pytest.param("acme\u0661", id="arabic-indic-digit"),
    pytest.param("\uff41cme", id="fullwidth-letter"),
    pytest.param("acme\n", id="trailing-newline"),
    pytest.param("acme\x00", id="nul"),
    pytest.param("acme_", id="underscore"),
    pytest.param("-acme", id="leading-hyphen"),
    pytest.param("acme-", id="trailing-hyphen"),
    pytest.param("ac--me", id="double-hyphen"),
    pytest.param("a" * 64, id="64-chars"),
    pytest.param("a" * 1000, id="1000-chars"),
    pytest.param("", id="empty"),
]


def get_jobs(api, caller, account_id):
    return api.get("/v1/jobs", HTTP_X_API_KEY=caller.plaintext, HTTP_X_SELECTED_ACCOUNT_ID=account_id)


@pytest.mark.parametrize("account_id", MALFORMED)
def test_a_malformed_account_header_is_400_naming_the_header(api, operator, account_id):
    response = get_jobs(api, operator, account_id)
    assert response.status_code == 400
    assert list(response.json()) == [HEADER]


@pytest.mark.parametrize("account_id", MALFORMED)
def test_a_malformed_account_header_never_creates_a_job_in_acme(api, operator, account_id, storage_dir):
    response = api.post("/v1/jobs", job_body(), format="json", HTTP_X_API_KEY=operator.plaintext,
                        HTTP_X_SELECTED_ACCOUNT_ID=account_id)
    assert response.status_code == 400
    assert Job.objects.count() == 0
    assert queued_tasks() == []


def test_the_exact_account_id_is_accepted(api, operator):
    assert get_jobs(api, operator, "acme").status_code == 200


def test_a_missing_account_header_with_a_valid_key_is_400(api, operator):
    response = api.get("/v1/jobs", HTTP_X_API_KEY=operator.plaintext)
    assert response.status_code == 400
    assert list(response.json()) == [HEADER]


def test_a_well_formed_account_the_key_lacks_is_403(api, operator):
    assert get_jobs(api, operator, "a" * 63).status_code == 403
    assert get_jobs(api, operator, "globex").status_code == 403


def test_a_bad_key_is_401_whatever_the_account_header(api, operator):
    response = api.get("/v1/jobs", HTTP_X_API_KEY="nope", HTTP_X_SELECTED_ACCOUNT_ID=" acme")
    assert response.status_code == 401
