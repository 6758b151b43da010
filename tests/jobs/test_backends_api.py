"""GET /v1/backends and PUT /v1/backends/{name}: what the account can submit to, and its configuration."""

import pytest

from backends.models import BackendConfig


def test_the_local_backend_is_listed_with_its_storage_scheme(api, viewer):
    response = api.get("/v1/backends", **viewer.headers)
    assert response.status_code == 200
    local = {backend["name"]: backend for backend in response.json()}["local"]
    assert local["storage_schemes"] == ["file"]
    assert local["configured"] is True
    assert local["requires_config"] is False
    assert local["config"] == {}
    assert local["max_runtime_seconds"] > 0


def test_one_backend_is_described_by_name(api, viewer):
    response = api.get("/v1/backends/local", **viewer.headers)
    assert response.status_code == 200
    assert response.json()["name"] == "local"


def test_a_disabled_backend_is_not_offered(api, operator, settings):
    settings.TRAIN_LOCAL_BACKEND = False
    assert "local" not in [backend["name"] for backend in api.get("/v1/backends", **operator.headers).json()]
    assert api.get("/v1/backends/local", **operator.headers).status_code == 404
    assert api.put("/v1/backends/local", {"config": {}}, format="json", **operator.headers).status_code == 404


def test_an_admin_configures_the_local_backend_with_an_empty_config(api, operator):
    response = api.put("/v1/backends/local", {"config": {}}, format="json", **operator.headers)
    assert response.status_code == 200
    assert response.json()["configured"] is True
    row = BackendConfig.objects.get(account=operator.account, backend="local")
    assert (row.config, row.updated_by) == ({}, operator.key.user)


def test_a_non_empty_config_for_local_is_400_naming_the_config_field(api, operator):
    response = api.put("/v1/backends/local", {"config": {"region": "us-east-1"}}, format="json", **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["config.region"]
    assert "no configuration" in response.json()["config.region"][0]
    assert not BackendConfig.objects.exists()


@pytest.mark.parametrize("body", [{}, {"config": "x"}, {"config": ["x"]}, {"config": None}, ["config"]])
def test_a_body_without_a_config_object_is_400_naming_config(api, operator, body):
    response = api.put("/v1/backends/local", body, format="json", **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["config"]
    assert not BackendConfig.objects.exists()


@pytest.mark.parametrize("caller", ["member", "viewer"])
def test_only_an_admin_may_configure_a_backend(api, request, caller):
    caller = request.getfixturevalue(caller)
    response = api.put("/v1/backends/local", {"config": {}}, format="json", **caller.headers)
    assert response.status_code == 403
    assert not BackendConfig.objects.exists()


def test_an_unknown_backend_is_404(api, operator):
    assert api.get("/v1/backends/mainframe", **operator.headers).status_code == 404
    assert api.put("/v1/backends/mainframe", {"config": {}}, format="json", **operator.headers).status_code == 404
    assert not BackendConfig.objects.exists()

