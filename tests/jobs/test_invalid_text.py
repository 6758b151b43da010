"""Text the database cannot store (a NUL byte, an unpaired surrogate) is a 400 naming the field, in any
body field, key, query parameter or path: never a 500 from PostgreSQL, and nothing is written."""

import json

import pytest

from backends.models import BackendConfig
from jobs.models import Job
from tests.support.jobs import job_body, make_job, queued_tasks

pytestmark = pytest.mark.django_db

NUL = "\x00"
SURROGATE = "\\ud800"  # as a JSON escape: json.dumps cannot write a lone surrogate itself


def post_text(api, caller, text, path="/v1/jobs"):
    return api.generic("POST", path, text, content_type="application/json", **caller.headers)


def body_with(field_path: str, bad: str) -> str:
    """A valid job body as JSON text whose `field_path` value holds `bad` (raw JSON text)."""
    marker = "@@BAD@@"
    body = job_body(env={"A": "1"}, labels={"team": "nlp"}, backend_options={"opt": {"deep": "x"}},
                    args=["--x"])
    target, _, rest = field_path.partition(".")
    if field_path == "command[1]":
        body["command"] = ["python", marker]
    elif rest:
        node = body[target]
        *parents, leaf = rest.split(".")
        for parent in parents:
            node = node[parent]
        node[leaf] = marker
    else:
        body[target] = marker
    return json.dumps(body).replace(json.dumps(marker)[1:-1], bad)


BAD_TEXT = [pytest.param(json.dumps(NUL)[1:-1], id="nul"), pytest.param(SURROGATE, id="surrogate")]
FIELDS = ["name", "image", "command[1]", "env.A", "labels.team", "backend_options.opt.deep"]


@pytest.mark.parametrize("bad", BAD_TEXT)
@pytest.mark.parametrize("field_path", FIELDS)
def test_invalid_text_in_a_body_field_is_400_naming_it(api, operator, field_path, bad):
    response = post_text(api, operator, body_with(field_path, bad))
    assert response.status_code == 400, response.content
    assert list(response.json()) == [field_path]
    assert Job.objects.count() == 0
    assert queued_tasks() == []


@pytest.mark.parametrize("bad", [pytest.param("\\u0000", id="nul"), pytest.param(SURROGATE, id="surrogate")])
def test_invalid_text_in_a_key_is_400(api, operator, bad):
    text = json.dumps(job_body(env={"KEY": "v"})).replace('"KEY"', f'"K{bad}"')
    response = post_text(api, operator, text)
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["env"]
    assert Job.objects.count() == 0


def test_invalid_text_in_a_backend_configuration_is_400(api, operator):
    text = '{"config": {"region": "eu-west-1\\u0000"}}'
    response = api.generic("PUT", "/v1/backends/local", text, content_type="application/json", **operator.headers)
    assert response.status_code == 400, response.content
    assert list(response.json()) == ["config.region"]
    assert not BackendConfig.objects.exists()


@pytest.mark.parametrize("param", ["name", "backend", "label", "status", "cursor"])
def test_a_nul_in_a_list_filter_is_400_naming_it(api, operator, param):
    make_job(operator.account)
    response = api.get("/v1/jobs", {param: f"x{NUL}y"}, **operator.headers)
    assert response.status_code == 400, response.content
    assert list(response.json()) == [param]


@pytest.mark.parametrize("path", ["/v1/jobs/%00", "/v1/jobs/job_%00", "/v1/jobs/%00/events", "/v1/jobs/%00/logs",
                                  "/v1/jobs/%ED%A0%80", "/v1/backends/%00"])
def test_invalid_text_in_a_path_is_404(api, operator, path):
    response = api.get(path, **operator.headers)
    assert response.status_code == 404, response.content
    assert response["Content-Type"] == "application/json"


def test_a_cancel_of_a_nul_job_id_is_404(api, operator):
    response = api.post("/v1/jobs/%00/cancel", **operator.headers)
    assert response.status_code == 404, response.content
