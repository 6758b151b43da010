"""The published OpenAPI schema and the browsable docs page."""

import json

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture
def schema(api):
    response = api.get("/v1/openapi.json")
    assert response.status_code == 200
    return json.loads(response.content)


def test_the_schema_is_openapi_3_with_the_job_paths(schema):
    assert schema["openapi"].startswith("3.")
    assert {"/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/cancel", "/v1/jobs/{id}/events",
            "/v1/backends", "/v1/backends/{name}"} <= set(schema["paths"])
    assert set(schema["paths"]["/v1/jobs"]) >= {"get", "post"}


def test_the_schema_documents_the_api_key_and_account_headers(schema):
    schemes = schema["components"]["securitySchemes"]
    headers = {(scheme["type"], scheme["in"], scheme["name"]) for scheme in schemes.values()}
    assert ("apiKey", "header", "x-api-key") in headers
    assert ("apiKey", "header", "x-selected-account-id") in headers


def test_every_job_operation_requires_both_headers(schema):
    schemes = schema["components"]["securitySchemes"]
    for path, operations in schema["paths"].items():
        if not path.startswith(("/v1/jobs", "/v1/backends")):
            continue
        for method, operation in operations.items():
            required = [set(requirement) for requirement in operation["security"]]
            names = {schemes[name]["name"] for name in required[0]}
            assert names == {"x-api-key", "x-selected-account-id"}, (method, path)


def test_the_docs_page_is_html(api):
    response = api.get("/v1/docs")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert b"/v1/openapi.json" in response.content


def _schema_of(schema, path, method, status):
    return schema["paths"][path][method]["responses"][status]["content"]["application/json"]["schema"]


@pytest.mark.parametrize(("path", "method", "status"), [
    ("/v1/jobs", "post", "422"),
    ("/v1/jobs/{id}/cancel", "post", "409"),
    ("/v1/jobs/{id}/logs", "get", "503"),
])
def test_declared_error_answers_describe_the_error_body_not_a_response_object(schema, path, method, status):
    body = _schema_of(schema, path, method, status)
    assert body["type"] == "object"
    assert "content" not in body and "description" not in body.get("properties", {})
    assert schema["paths"][path][method]["responses"][status]["description"]


def test_the_job_body_lists_the_enabled_backends_as_an_enum(schema):
    request = schema["paths"]["/v1/jobs"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    component = schema["components"]["schemas"][request["$ref"].rsplit("/", 1)[1]]
    backend = component["properties"]["backend"]
    if "$ref" in backend:
        backend = schema["components"]["schemas"][backend["$ref"].rsplit("/", 1)[1]]
    elif "allOf" in backend:
        backend = schema["components"]["schemas"][backend["allOf"][0]["$ref"].rsplit("/", 1)[1]]
    assert "local" in backend["enum"] and "sagemaker" in backend["enum"]


def test_the_page_size_parameter_states_its_minimum_and_the_cap(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/v1/jobs"]["get"]["parameters"]}
    assert parameters["page_size"]["schema"]["minimum"] == 1
    assert "200" in parameters["page_size"]["description"]
