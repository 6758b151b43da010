"""A method a route does not take is 405 for every role: a 403 would suggest that a stronger role helps."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/v1/backends/local"),
    ("delete", "/v1/backends/local"),
    ("patch", "/v1/backends/local"),
    ("post", "/v1/backends"),
    ("put", "/v1/jobs"),
    ("delete", "/v1/jobs/job_0123"),
    ("post", "/v1/images"),
])
@pytest.mark.parametrize("actor", ["member", "viewer", "operator"])
def test_an_unsupported_method_is_405_whatever_the_role(api, request, actor, method, path):
    caller = request.getfixturevalue(actor)
    response = getattr(api, method)(path, {}, format="json", **caller.headers)
    assert response.status_code == 405, (actor, method, path, response.content)
    assert "Allow" in response


def test_a_supported_write_still_needs_the_role(api, member):
    response = api.put("/v1/backends/local", {"config": {}}, format="json", **member.headers)
    assert response.status_code == 403
