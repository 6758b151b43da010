"""A worker SIGKILLed in the middle of a task: after redelivery the job ends right, started once."""

import pytest
from django.conf import settings

from jobs.models import TERMINAL_STATUSES, Job, JobEvent
from tests.e2e.conftest import wait_for_status
from tests.support.processes import qcluster

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def submit_counting_job(api, caller, starts_file):
    body = {"name": "count", "backend": "local", "image": "python:3.11",
            "command": ["sh", "-c", f"echo start >> {starts_file}; sleep 1"]}
    response = api.post("/v1/jobs", body, format="json", **caller.headers)
    assert response.status_code == 201, response.content
    return response.json()["id"]


@pytest.mark.parametrize("fault", ["submit_after_create", "poll_after_fetch"])
def test_killed_worker_loses_nothing_and_starts_the_job_once(api, operator, tmp_path, job_scratch, fresh_faults,
                                                            fault):
    starts = job_scratch / "starts"
    with qcluster(tmp_path, TRAIN_FAULTS=f"{fault}:sigkill"):
        job_id = submit_counting_job(api, operator, starts)
        body = wait_for_status(api, operator, job_id, TERMINAL_STATUSES, timeout=120)
    assert body["status"] == "COMPLETED"
    assert starts.read_text().count("start") == 1
    assert JobEvent.objects.filter(job_id=job_id, to_status__in=TERMINAL_STATUSES).count() == 1
    assert (settings.TRAIN_DATA_DIR / "faults-fired" / fault).exists(), "the worker really was killed"
    if fault == "submit_after_create":
        assert Job.objects.get(pk=job_id).submit_attempts == 2, "the redelivered task found the running job"
