"""POST /v1/jobs/{id}/cancel: immediate for a job never handed to its backend, a request to the backend
otherwise, 409 for a finished job, and never a way to touch another account's job."""

import pytest
from django.utils import timezone

from jobs.models import Job, JobEvent, JobStatus, Submission
from tests.support.jobs import job_body, make_job, queued_tasks

CANCEL = "jobs.tasks.cancel_job"


def cancel(api, caller, job_id):
    return api.post(f"/v1/jobs/{job_id}/cancel", **caller.headers)


def cancels() -> list[tuple]:
    return [args for func, args in queued_tasks() if func == CANCEL]


def submitted_job(account, status=JobStatus.PENDING):
    return make_job(account, status=status, submission=Submission.SUBMITTED, remote_name="train-x",
                    remote_id="train-x", submitted_at=timezone.now())


def test_cancel_of_a_never_submitted_job_is_immediate(api, operator):
    job_id = api.post("/v1/jobs", job_body(), format="json", **operator.headers).json()["id"]
    response = cancel(api, operator, job_id)
    assert response.status_code == 202
    assert response.json()["status"] == JobStatus.CANCELED
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.CANCELED
    assert job.cancel_requested_at is not None
    assert job.finished_at is not None
    event = JobEvent.objects.filter(job=job).last()
    assert (event.from_status, event.to_status) == (JobStatus.PENDING, JobStatus.CANCELED)
    assert event.actor == f"api:{operator.key.key_id}"
    assert cancels() == []  # nothing to tell a backend that never had the job


def test_a_member_may_cancel(api, member):
    job = make_job(member.account)
    assert cancel(api, member, job.id).status_code == 202
    assert Job.objects.get(pk=job.pk).status == JobStatus.CANCELED


def test_cancel_twice_is_409_the_second_time_and_changes_nothing(api, operator):
    job = make_job(operator.account)
    assert cancel(api, operator, job.id).status_code == 202
    first = Job.objects.get(pk=job.pk)
    response = cancel(api, operator, job.id)
    assert response.status_code == 409
    assert "CANCELED" in response.json()["detail"]
    again = Job.objects.get(pk=job.pk)
    assert (again.status, again.cancel_requested_at, again.finished_at) == \
        (JobStatus.CANCELED, first.cancel_requested_at, first.finished_at)
    assert JobEvent.objects.filter(job=job).count() == 1


@pytest.mark.parametrize("status", [JobStatus.COMPLETED, JobStatus.FAILED, JobStatus.EXPIRED, JobStatus.CANCELED])
def test_cancel_of_a_finished_job_is_409(api, operator, status):
    job = make_job(operator.account, status=status, submission=Submission.SUBMITTED)
    response = cancel(api, operator, job.id)
    assert response.status_code == 409
    assert status in response.json()["detail"]
    job.refresh_from_db()
    assert (job.status, job.cancel_requested_at) == (status, None)
    assert not JobEvent.objects.filter(job=job).exists()
    assert cancels() == []


def test_a_viewer_cannot_cancel(api, viewer):
    job = make_job(viewer.account)
    assert cancel(api, viewer, job.id).status_code == 403
    job.refresh_from_db()
    assert (job.status, job.cancel_requested_at) == (JobStatus.PENDING, None)


def test_another_accounts_job_is_404_and_left_alone(api, operator, outsider):
    job = submitted_job(operator.account)
    response = cancel(api, outsider, job.id)
    assert response.status_code == 404
    job.refresh_from_db()
    assert (job.status, job.cancel_requested_at) == (JobStatus.PENDING, None)
    assert cancels() == []


def test_an_unknown_job_is_404(api, operator):
    assert cancel(api, operator, "job_" + "0" * 32).status_code == 404


@pytest.mark.parametrize("status", [JobStatus.PENDING, JobStatus.IN_PROGRESS])
def test_cancel_of_a_submitted_job_asks_the_backend(api, operator, status):
    job = submitted_job(operator.account, status=status)
    response = cancel(api, operator, job.id)
    assert response.status_code == 202
    assert response.json()["status"] == status
    assert response.json()["cancel_requested_at"]
    job.refresh_from_db()
    assert job.status == status  # CANCELED only once the backend confirms
    assert job.cancel_requested_at is not None
    assert cancels() == [(job.id,)]
    assert not JobEvent.objects.filter(job=job).exists()


def test_a_repeated_cancel_of_a_submitted_job_keeps_the_first_request_time(api, operator):
    job = submitted_job(operator.account)
    cancel(api, operator, job.id)
    first = Job.objects.get(pk=job.pk).cancel_requested_at
    assert cancel(api, operator, job.id).status_code == 202
    assert Job.objects.get(pk=job.pk).cancel_requested_at == first


def test_cancel_while_the_job_is_being_submitted_is_recorded_for_the_submitter(api, operator):
    job = make_job(operator.account, submission=Submission.SUBMITTING, submit_claimed_at=timezone.now())
    response = cancel(api, operator, job.id)
    assert response.status_code == 202
    job.refresh_from_db()
    assert job.status == JobStatus.PENDING
    assert job.cancel_requested_at is not None
    assert cancels() == []  # the submitter sees cancel_requested_at when it marks the job submitted
