"""Local jobs end to end: REST API in this process, a real qcluster worker process on the test DB."""

import pytest

from jobs.models import TERMINAL_STATUSES, JobEvent
from tests.e2e.conftest import wait_for_status
from tests.support.processes import qcluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def submit(api, caller, command, **fields):
    body = {"name": "e2e", "backend": "local", "image": "python:3.11", "command": command, **fields}
    response = api.post("/v1/jobs", body, format="json", **caller.headers)
    assert response.status_code == 201, response.content
    return response.json()["id"]


def terminal_events(job_id):
    return JobEvent.objects.filter(job_id=job_id, to_status__in=TERMINAL_STATUSES).count()


def test_completed_failed_canceled_and_expired_jobs(api, operator, tmp_path, job_scratch):
    started_marker = job_scratch / "long-job-started"
    with qcluster(tmp_path):
        ok = submit(api, operator, ["sh", "-c", "echo step 1; sleep 1; echo step 2"])
        bad = submit(api, operator, ["sh", "-c", "echo about to fail; exit 7"])
        long = submit(api, operator, ["sh", "-c", f"touch {started_marker}; sleep 120"])
        slow = submit(api, operator, ["sleep", "120"], max_runtime_seconds=2)

        body = wait_for_status(api, operator, ok, {"COMPLETED"})
        assert body["started_at"] and body["finished_at"]
        body = wait_for_status(api, operator, bad, {"FAILED"})
        assert "exited with code 7" in body["status_message"]
        # The log tail is the effect of entering FAILED, run by its own task right after.
        wait_until(lambda: api.get(f"/v1/jobs/{bad}", **operator.headers).json()["log_tail"] == ["about to fail"],
                   timeout=60, message="the failed job's log tail")

        wait_until(started_marker.exists, timeout=60, message="the long job to start")
        wait_for_status(api, operator, long, {"IN_PROGRESS"})
        response = api.post(f"/v1/jobs/{long}/cancel", **operator.headers)
        assert response.status_code == 202
        wait_for_status(api, operator, long, {"CANCELED"})
        assert api.post(f"/v1/jobs/{long}/cancel", **operator.headers).status_code == 409

        wait_for_status(api, operator, slow, {"EXPIRED"})

    logs = api.get(f"/v1/jobs/{ok}/logs", **operator.headers).json()
    assert logs["lines"] == ["step 1", "step 2"]
    events = api.get(f"/v1/jobs/{ok}/events", **operator.headers).json()
    # Created, started, finished: a job first seen finished still shows its start.
    assert [(e["from_status"], e["to_status"]) for e in events] == [
        ("", "PENDING"), ("PENDING", "IN_PROGRESS"), ("IN_PROGRESS", "COMPLETED")
    ]
    for job_id in (ok, bad, long, slow):
        assert terminal_events(job_id) == 1
