"""A query parameter an endpoint does not take is a 400 naming it: `?stauts=FAILED` must not quietly
list every job."""

import pytest

from jobs.models import JobStatus
from tests.support.jobs import make_job

pytestmark = pytest.mark.django_db


def test_a_misspelt_list_filter_is_400_naming_it(api, operator):
    make_job(operator.account, status=JobStatus.COMPLETED)
    response = api.get("/v1/jobs", {"stauts": "FAILED"}, **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["stauts"]
    assert "status" in response.json()["stauts"][0]


def test_the_documented_list_parameters_are_accepted(api, operator):
    make_job(operator.account, status=JobStatus.FAILED, labels={"team": "nlp"})
    response = api.get("/v1/jobs", {"status": "FAILED", "backend": "local", "name": "sft-run", "label": "team:nlp",
                                    "page_size": "10"}, **operator.headers)
    assert response.status_code == 200, response.content
    assert len(response.json()["results"]) == 1


def test_an_unknown_parameter_of_the_logs_endpoint_is_400(api, operator):
    job = make_job(operator.account)
    response = api.get(f"/v1/jobs/{job.id}/logs", {"tial": "5"}, **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["tial"]


@pytest.mark.parametrize("path", ["/v1/jobs/{id}", "/v1/jobs/{id}/events", "/v1/backends", "/v1/backends/local"])
def test_endpoints_without_parameters_refuse_any(api, operator, path):
    job = make_job(operator.account)
    response = api.get(path.format(id=job.id), {"verbose": "1"}, **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["verbose"]


def test_a_cancel_with_a_query_parameter_is_400_and_cancels_nothing(api, operator):
    job = make_job(operator.account)
    response = api.post(f"/v1/jobs/{job.id}/cancel?force=1", **operator.headers)
    assert response.status_code == 400
    job.refresh_from_db()
    assert job.cancel_requested_at is None and job.status == JobStatus.PENDING


@pytest.mark.parametrize("path", ["/v1/images", "/v1/images/acme/app/tags", "/v1/images/acme/app/tags/v1/history"])
def test_image_endpoints_refuse_unknown_parameters(api, operator, path):
    response = api.get(path, {"verbose": "1"}, **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["verbose"]
