"""`Idempotency-Key` on POST /v1/jobs: a retried request gets the first job back, never a second one."""

from jobs.models import IdempotencyKey, Job
from jobs.submission import jobs_due_for_submission
from tests.support.jobs import job_body, queued_tasks

SUBMISSION_RUN = "jobs.tasks.submit_due_jobs"


def post(api, caller, body, key):
    return api.post("/v1/jobs", body, format="json", HTTP_IDEMPOTENCY_KEY=key, **caller.headers)


def submits() -> list[tuple]:
    """The jobs a submission run will send to their backend (and one such run is queued)."""
    assert [func for func, _args in queued_tasks()] == [SUBMISSION_RUN]
    return [(job_id,) for job_id in jobs_due_for_submission().order_by("created_at").values_list("pk", flat=True)]


def test_the_same_key_and_body_return_the_same_job(api, operator):
    first = post(api, operator, job_body(), "retry-1")
    second = post(api, operator, job_body(), "retry-1")
    assert first.status_code == second.status_code == 201
    assert "Idempotent-Replayed" not in first
    assert second["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert Job.objects.count() == 1
    assert submits() == [(first.json()["id"],)]


def test_the_same_body_with_keys_in_another_order_is_the_same_request(api, operator):
    body = job_body(env={"A": "1", "B": "2"})
    reordered = dict(reversed(list({**body, "env": {"B": "2", "A": "1"}}.items())))
    first = post(api, operator, body, "retry-2")
    second = post(api, operator, reordered, "retry-2")
    assert second.status_code == 201
    assert second.json()["id"] == first.json()["id"]


def test_the_same_key_with_another_body_is_422_and_creates_nothing(api, operator):
    first = post(api, operator, job_body(), "retry-3")
    response = post(api, operator, job_body(name="something-else"), "retry-3")
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["detail"]
    assert list(Job.objects.values_list("id", flat=True)) == [first.json()["id"]]
    assert len(submits()) == 1


def test_without_a_key_every_post_is_a_new_job(api, operator):
    first = api.post("/v1/jobs", job_body(), format="json", **operator.headers)
    second = api.post("/v1/jobs", job_body(), format="json", **operator.headers)
    assert first.json()["id"] != second.json()["id"]
    assert len(submits()) == 2


def test_a_key_of_255_characters_is_accepted(api, operator):
    assert post(api, operator, job_body(), "k" * 255).status_code == 201
    assert IdempotencyKey.objects.get().key == "k" * 255


def test_a_key_of_256_characters_is_400(api, operator):
    response = post(api, operator, job_body(), "k" * 256)
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not Job.objects.exists()


def test_an_empty_key_is_400(api, operator):
    response = post(api, operator, job_body(), "")
    assert response.status_code == 400
    assert "Idempotency-Key" in response.json()
    assert not Job.objects.exists()
    assert queued_tasks() == []


def test_keys_are_scoped_to_the_account(api, operator, outsider):
    ours = post(api, operator, job_body(), "shared-key")
    theirs = post(api, outsider, job_body(), "shared-key")
    assert ours.status_code == theirs.status_code == 201
    assert "Idempotent-Replayed" not in theirs
    assert ours.json()["id"] != theirs.json()["id"]
    assert Job.objects.get(id=theirs.json()["id"]).account_id == "globex"
    assert len(submits()) == 2


def test_another_account_reusing_a_key_with_another_body_is_not_a_conflict(api, operator, outsider):
    post(api, operator, job_body(), "shared-key")
    assert post(api, outsider, job_body(name="theirs"), "shared-key").status_code == 201


def test_a_rejected_request_does_not_use_up_its_key(api, operator):
    assert post(api, operator, job_body(backend="mainframe"), "retry-4").status_code == 400
    response = post(api, operator, job_body(), "retry-4")
    assert response.status_code == 201
    assert "Idempotent-Replayed" not in response


def test_a_replay_returns_the_job_as_it_is_now(api, operator):
    first = post(api, operator, job_body(), "retry-5")
    api.post(f"/v1/jobs/{first.json()['id']}/cancel", **operator.headers)
    replay = post(api, operator, job_body(), "retry-5")
    assert replay.status_code == 201
    assert replay.json()["id"] == first.json()["id"]
    assert replay.json()["status"] == "CANCELED"


def test_a_replay_by_another_member_of_the_account_returns_the_same_job(api, operator, member):
    first = post(api, operator, job_body(), "team-key")
    second = post(api, member, job_body(), "team-key")
    assert second["Idempotent-Replayed"] == "true"
    assert second.json()["id"] == first.json()["id"]
