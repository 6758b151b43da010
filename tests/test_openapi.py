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
