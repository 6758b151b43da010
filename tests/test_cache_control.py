"""Responses that carry a credential or an external id say `Cache-Control: no-store`: registry tokens
(GET and the form POST, refused or not) and the backend configuration admins see."""

import pytest

from tests.backends.conftest import EXECUTION_ROLE
from tests.registry.conftest import basic

pytestmark = pytest.mark.django_db

SAGEMAKER = {"region": "eu-west-1", "execution_role_arn": EXECUTION_ROLE, "output_s3_uri": "s3://acme-models/train"}


def no_store(response) -> bool:
    return "no-store" in response.get("Cache-Control", "")


def test_token_responses_are_not_stored(client, operator):
    issued = client.get("/v2/token", {"service": "train-registry"},
                        HTTP_AUTHORIZATION=basic("acme", operator.plaintext))
    assert issued.status_code == 200 and no_store(issued)
    posted = client.post("/v2/token", {"grant_type": "password", "username": "acme", "password": operator.plaintext})
    assert posted.status_code == 200 and no_store(posted)
    refused = client.get("/v2/token", HTTP_AUTHORIZATION=basic("acme", "wrong"))
    assert refused.status_code == 401 and no_store(refused)


def test_backend_configuration_with_the_external_id_is_not_stored(api, operator):
    put = api.put("/v1/backends/sagemaker", {"config": SAGEMAKER}, format="json", **operator.headers)
    assert put.status_code == 200, put.content
    assert "external_id" in put.json()["config"] and no_store(put)
    shown = api.get("/v1/backends/sagemaker", **operator.headers)
    assert "external_id" in shown.json()["config"] and no_store(shown)
    assert no_store(api.get("/v1/backends", **operator.headers))
