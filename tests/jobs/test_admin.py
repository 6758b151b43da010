"""The operators' admin: find jobs, see their history, cancel them through the same service as the API."""

import re

from django.contrib.admin.utils import quote
from django.urls import reverse

from jobs.models import Job, JobEvent, JobStatus
from tests.support.jobs import make_job, make_submitted_job
from trainsvc.accounts.models import ApiKey


def change_url(job):
    # The admin unquotes ids in its URLs, and "_" is its escape character: a job id whose first hex
    # digits read as an escape ("job_24...") would name another object. Quote it as the admin's own
    # links do.
    return reverse("admin:jobs_job_change", args=[quote(job.pk)])


def test_job_list_filters_and_search(staff_client, acme):
    wanted = make_job(acme, name="llama-sft")
    make_job(acme, name="other")
    page = staff_client.get("/admin/jobs/job/", {"status__exact": "PENDING", "backend__exact": "local",
                                                  "account__id__exact": "acme", "age": "24h", "q": "llama"})
    assert page.status_code == 200
    assert wanted.pk in page.content.decode() and "other" not in page.content.decode()
    by_id = staff_client.get("/admin/jobs/job/", {"q": wanted.pk})
    assert wanted.pk in by_id.content.decode()


def test_job_page_shows_events_and_status_is_read_only(staff_client, acme):
    job = make_job(acme)
    job.transition(JobStatus.FAILED, reason="exit 3")
    page = staff_client.get(change_url(job))
    assert page.status_code == 200
    assert "exit 3" in page.content.decode()
    staff_client.post(change_url(job), {"status": "COMPLETED"})
    assert Job.objects.get(pk=job.pk).status == JobStatus.FAILED


def test_cancel_selected_jobs_action(staff_client, acme, fake_backend):
    waiting = make_job(acme)
    running = make_submitted_job(acme, backend="fake", status=JobStatus.IN_PROGRESS)
    finished = make_job(acme)
    finished.transition(JobStatus.COMPLETED)
    response = staff_client.post("/admin/jobs/job/", {
        "action": "cancel_selected", "_selected_action": [waiting.pk, running.pk, finished.pk],
    }, follow=True)
    assert "1 had already finished" in response.content.decode()
    assert Job.objects.get(pk=waiting.pk).status == JobStatus.CANCELED
    assert JobEvent.objects.get(job=waiting, to_status=JobStatus.CANCELED).actor == "admin:root"
    assert Job.objects.get(pk=running.pk).cancel_requested_at is not None
    assert Job.objects.get(pk=finished.pk).status == JobStatus.COMPLETED


def test_jobs_cannot_be_added_or_deleted_in_the_admin(staff_client, acme):
    job = make_job(acme)
    assert staff_client.get("/admin/jobs/job/add/").status_code == 403
    assert staff_client.get(reverse("admin:jobs_job_delete", args=[job.pk])).status_code == 403


def test_api_key_secret_is_shown_once_and_never_again(staff_client, operator):
    user = operator.key.user
    response = staff_client.post("/admin/accounts/apikey/add/", {"user": user.pk, "name": "ci"}, follow=True)
    key = ApiKey.objects.get(name="ci")
    shown = re.search(rf"trn_{key.key_id}_[A-Za-z0-9_-]{{40}}", response.content.decode())
    assert shown, "the new key is shown in the confirmation message"
    assert ApiKey.objects.authenticate(shown.group(0)) == key, "and it works"
    for page in (f"/admin/accounts/apikey/{key.pk}/change/", "/admin/accounts/apikey/"):
        text = staff_client.get(page).content.decode()
        assert shown.group(0) not in text and key.secret_hash not in text


def test_revoke_action_disables_keys(staff_client, operator, api):
    staff_client.post("/admin/accounts/apikey/", {"action": "revoke_selected",
                                                  "_selected_action": [operator.key.pk]})
    assert api.get("/v1/jobs", **operator.headers).status_code == 401
