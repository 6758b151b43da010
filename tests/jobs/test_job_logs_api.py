"""GET /v1/jobs/{id}/logs: the `tail` parameter and a job that has no logs yet."""

import pytest

from tests.support.jobs import make_job


@pytest.mark.parametrize("tail", ["0", "-1", "5001", "abc", "1.5", "\u00b2", "9" * 5000])
def test_a_tail_outside_1_to_5000_is_400_naming_tail(api, operator, tail):
    job = make_job(operator.account)
    response = api.get(f"/v1/jobs/{job.id}/logs", {"tail": tail}, **operator.headers)
    assert response.status_code == 400
    assert list(response.json()) == ["tail"]


def test_a_job_not_yet_submitted_has_no_log_lines(api, viewer):
    job = make_job(viewer.account)
    response = api.get(f"/v1/jobs/{job.id}/logs", {"tail": "5000"}, **viewer.headers)
    assert response.status_code == 200
    assert response.json() == {"lines": []}
