"""POST /v1/jobs takes the body as sent: an unknown field, a number where a string is due or a string
where a number is due is a 400 naming the field, never a job that differs from the request."""

import pytest

from jobs.models import Job
from tests.support.jobs import job_body, queued_tasks

pytestmark = pytest.mark.django_db


def post(api, caller, body):
    return api.post("/v1/jobs", body, format="json", **caller.headers)


def assert_refused_on(response, *fields):
    assert response.status_code == 400, response.content
    assert set(response.json()) == set(fields), response.json()
    assert Job.objects.count() == 0
    assert queued_tasks() == []


@pytest.mark.parametrize("misspelt", ["comand", "enviroment", "lables", "max_runtime"])
def test_a_misspelt_field_is_400_naming_it(api, operator, misspelt):
    body = job_body()
    body[misspelt] = body.pop("command") if misspelt == "comand" else {"A": "1"}
    expected = {misspelt, "command"} if misspelt == "comand" else {misspelt}
    assert_refused_on(post(api, operator, body), *expected)


def test_an_unknown_field_inside_resources_is_named_by_its_path(api, operator):
    body = job_body(resources={"instance_count": 1, "gpus": 2})
    assert_refused_on(post(api, operator, body), "resources.gpus")


def test_an_unknown_field_inside_a_mount_is_named_by_its_path(api, operator):
    body = job_body(storage_mounts=[{"source": "file:///tmp", "mode": "ro", "readonly": True}])
    assert_refused_on(post(api, operator, body), "storage_mounts[0].readonly")


@pytest.mark.parametrize(("field", "value", "path"), [
    pytest.param("labels", {"team": 5}, "labels.team", id="label-number"),
    pytest.param("command", ["python", 2], "command[1]", id="command-number"),
    pytest.param("env", {"A": 1}, "env.A", id="env-number"),
    pytest.param("env", {"A": True}, "env.A", id="env-boolean"),
    pytest.param("args", ["--epochs", 3], "args[1]", id="arg-number"),
    pytest.param("name", 42, "name", id="name-number"),
    pytest.param("image", ["x"], "image", id="image-list"),
    pytest.param("max_runtime_seconds", "3600", "max_runtime_seconds", id="runtime-string"),
    pytest.param("max_runtime_seconds", 3600.0, "max_runtime_seconds", id="runtime-float"),
    pytest.param("max_runtime_seconds", True, "max_runtime_seconds", id="runtime-boolean"),
    pytest.param("resources", {"accelerator_count": "1", "accelerator_type": "T4"}, "resources.accelerator_count",
                 id="count-string"),
    pytest.param("resources", {"machine_type": 8}, "resources.machine_type", id="machine-type-number"),
    pytest.param("storage_mounts", [{"source": 7}], "storage_mounts[0].source", id="mount-source-number"),
])
def test_a_value_of_the_wrong_json_type_is_400_not_coerced(api, operator, field, value, path):
    assert_refused_on(post(api, operator, job_body(**{field: value})), path)


def test_leading_spaces_are_kept_so_a_label_with_one_is_refused_not_trimmed(api, operator):
    assert_refused_on(post(api, operator, job_body(labels={"role": " lead"})), "labels.role")


def test_leading_spaces_in_the_name_are_refused_not_trimmed(api, operator):
    assert_refused_on(post(api, operator, job_body(name=" sft-run")), "name")


def test_strings_are_stored_exactly_as_sent(api, operator):
    body = job_body(args=[" --flag ", ""], env={"GREETING": "  hello  "})
    response = post(api, operator, body)
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    assert job.args == [" --flag ", ""]
    assert job.env == {"GREETING": "  hello  "}


def test_an_unknown_backend_is_400_listing_the_enabled_ones(api, operator):
    response = post(api, operator, job_body(backend="sagemkr"))
    assert_refused_on(response, "backend")
    assert "local" in response.json()["backend"][0]
