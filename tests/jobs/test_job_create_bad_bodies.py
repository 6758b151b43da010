"""Malformed POST /v1/jobs bodies are refused with a JSON 4xx, never a 500 or an HTML page, and fields a
client may not set are refused by name."""

import json

import pytest

from jobs.models import Job, JobStatus
from tests.support.jobs import job_body, queued_tasks


def post_raw(api, caller, data, content_type="application/json"):
    return api.generic("POST", "/v1/jobs", data, content_type=content_type, **caller.headers)


def assert_refused(response, status):
    assert response.status_code == status, response.content
    assert response["Content-Type"] == "application/json"
    assert response.json()
    assert Job.objects.count() == 0
    assert queued_tasks() == []


@pytest.mark.parametrize(("data", "content_type"), [
    pytest.param("name=x&backend=local", "application/x-www-form-urlencoded", id="form"),
    pytest.param(json.dumps(job_body()), "text/plain", id="json-as-text-plain"),
    pytest.param("<job/>", "application/xml", id="xml"),
    pytest.param(json.dumps(job_body()), "multipart/form-data; boundary=x", id="multipart"),
])
def test_a_body_that_is_not_json_is_415(api, operator, data, content_type):
    assert_refused(post_raw(api, operator, data, content_type), 415)


@pytest.mark.parametrize("data", [
    pytest.param("{", id="truncated"),
    pytest.param("{'name': 'x'}", id="single-quotes"),
    pytest.param("name=x", id="form-text"),
    pytest.param(b"{\"name\": \"\xff\"}", id="invalid-utf8"),
    pytest.param('{"name": "x",}', id="trailing-comma"),
])
def test_a_body_that_does_not_parse_is_400(api, operator, data):
    assert_refused(post_raw(api, operator, data), 400)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_400(api, operator, constant):
    data = json.dumps(job_body())[:-1] + f', "max_runtime_seconds": {constant}}}'
    assert_refused(post_raw(api, operator, data), 400)


def test_a_100k_deep_array_is_400_not_500(api, operator):
    assert_refused(post_raw(api, operator, "[" * 100_000 + "]" * 100_000), 400)


def test_a_100k_deep_object_is_400_not_500(api, operator):
    assert_refused(post_raw(api, operator, '{"a":' * 100_000 + "1" + "}" * 100_000), 400)


def test_deep_nesting_inside_a_valid_field_is_400(api, operator):
    options = {}
    for _ in range(40):
        options = {"a": options}
    assert_refused(post_raw(api, operator, json.dumps(job_body(backend_options=options))), 400)


def test_a_body_over_the_upload_limit_is_413(api, operator, settings):
    body = json.dumps(job_body(env={"BIG": "x" * settings.DATA_UPLOAD_MAX_MEMORY_SIZE}))
    assert_refused(post_raw(api, operator, body), 413)


def test_a_body_just_under_the_upload_limit_is_parsed(api, operator, settings):
    body = json.dumps(job_body(args=["x" * 30_000] * 10))
    assert len(body) < settings.DATA_UPLOAD_MAX_MEMORY_SIZE
    assert post_raw(api, operator, body).status_code == 201


@pytest.mark.parametrize("data", ["[]", json.dumps([job_body()]), '"job"', "42", "null", "true"])
def test_json_that_is_not_an_object_is_400(api, operator, data):
    assert_refused(post_raw(api, operator, data), 400)


def test_an_empty_body_is_400_listing_the_required_fields(api, operator):
    response = post_raw(api, operator, "")
    assert_refused(response, 400)
    assert {"name", "backend", "image", "command"} <= set(response.json())


def test_fields_the_server_owns_are_refused_by_name(api, operator):
    injected = {
        "id": "job_chosen_by_the_client", "status": JobStatus.COMPLETED, "account": "globex",
        "remote_id": "projects/x/jobs/1", "image_digest": "sha256:" + "b" * 64, "cloud_image": "evil/x",
        "created_by": "otto", "cancel_requested_at": "2020-01-01T00:00:00Z", "submission": "SUBMITTED",
        "remote_name": "someone-elses-job", "console_url": "https://evil.example.com/",
    }
    response = api.post("/v1/jobs", job_body(**injected), format="json", **operator.headers)
    assert_refused(response, 400)
    assert set(response.json()) == set(injected)
