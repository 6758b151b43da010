"""Following Vertex AI jobs: the state table, batch polls (one paged, read-masked list of the account's
active jobs, then finished jobs by label), a GET per job for a few, pacing and 429 back-off, cancel
(a no-op on a finished job), and the log tail from Cloud Logging."""

import pytest

from backends.base import RemoteRef
from backends.gcp.vertex import POLL_READ_MASK, observation
from backends.services import backend_for_snapshot
from tests.backends.test_vertex_request import spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def backend(vertex_config):
    return backend_for_snapshot(account_id="acme", name="vertex-ai", config=vertex_config)


def submitted(backend, count: int, cloud) -> list[RemoteRef]:
    """`count` jobs as Train creates them, put straight into the fake (creates are paced at 0.9/s:
    hundreds would take minutes)."""
    refs = []
    for index in range(count):
        job = spec(job_id=f"job_{index:032x}")
        name = backend.remote_name(job.job_id)
        remote_id = cloud.vertex.insert(backend.build_request(job, name), location="europe-west4",
                                        state="JOB_STATE_QUEUED")
        refs.append(RemoteRef(name=name, remote_id=remote_id))
    return refs


@pytest.mark.parametrize(("state", "started", "status", "shown"), [
    ("JOB_STATE_QUEUED", False, "PENDING", "QUEUED"),
    ("JOB_STATE_PENDING", False, "PENDING", "PENDING"),
    ("JOB_STATE_RUNNING", True, "IN_PROGRESS", "RUNNING"),
    ("JOB_STATE_UPDATING", True, "IN_PROGRESS", "UPDATING"),
    ("JOB_STATE_PAUSED", True, "IN_PROGRESS", "PAUSED"),
    ("JOB_STATE_CANCELLING", True, "IN_PROGRESS", "CANCELLING"),
    ("JOB_STATE_CANCELLING", False, "PENDING", "CANCELLING"),
    ("JOB_STATE_SUCCEEDED", True, "COMPLETED", "SUCCEEDED"),
    ("JOB_STATE_FAILED", True, "FAILED", "FAILED"),
    ("JOB_STATE_PARTIALLY_SUCCEEDED", True, "FAILED", "PARTIALLY_SUCCEEDED"),
    ("JOB_STATE_CANCELLED", True, "CANCELED", "CANCELLED"),
    ("JOB_STATE_EXPIRED", False, "EXPIRED", "EXPIRED"),
    ("JOB_STATE_UNSPECIFIED", False, None, "UNSPECIFIED"),
    ("JOB_STATE_SOMETHING_NEW", True, None, "SOMETHING_NEW"),
])
def test_state_table(state, started, status, shown):
    job = {"name": "n", "state": state, "createTime": "2026-01-01T10:00:00Z", "endTime": "2026-01-01T11:00:00Z"}
    if started:
        job["startTime"] = "2026-01-01T10:01:00.5Z"
    seen = observation(job)
    assert (seen.status, seen.remote_status) == (status, shown)
    assert (seen.started_at is not None) == started
    assert (seen.finished_at is not None) == (status in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED"))


def test_cancelling_and_paused_say_so():
    assert "Cancel requested" in observation({"state": "JOB_STATE_CANCELLING"}).message
    assert "paused" in observation({"state": "JOB_STATE_PAUSED", "startTime": "2026-01-01T10:00:00Z"}).message


def test_a_failure_shows_vertexs_error_message():
    seen = observation({"state": "JOB_STATE_FAILED", "error": {"code": 3, "message": "The replica workerpool0-0 "
                                                                "exited with a non-zero status of 1."}})
    assert seen.message == "The replica workerpool0-0 exited with a non-zero status of 1."


def test_few_jobs_are_read_one_get_each(backend, fake_cloud):
    refs = submitted(backend, 2, fake_cloud)
    fake_cloud.vertex.start(refs[0].remote_id)
    seen = backend.poll(refs)
    assert seen[refs[0]].status == "IN_PROGRESS" and seen[refs[0]].started_at is not None
    assert seen[refs[1]].status == "PENDING"
    assert fake_cloud.calls[("vertex", "GetCustomJob")] == 2
    assert fake_cloud.calls[("vertex", "ListCustomJobs")] == 0


def test_many_jobs_are_read_by_listing(backend, fake_cloud):
    refs = submitted(backend, 230, fake_cloud)
    vertex = fake_cloud.vertex
    for ref in refs[:100]:
        vertex.start(ref.remote_id)
    for ref in refs[:5]:
        vertex.complete(ref.remote_id)
    vertex.fail(refs[5].remote_id, "OOM")
    lists_before = fake_cloud.calls[("vertex", "ListCustomJobs")]
    seen = backend.poll(refs)
    assert len(seen) == 230
    assert [seen[ref].status for ref in refs[:6]] == ["COMPLETED"] * 5 + ["FAILED"]
    assert {seen[ref].status for ref in refs[6:100]} == {"IN_PROGRESS"}
    assert {seen[ref].status for ref in refs[100:]} == {"PENDING"}
    # 224 active jobs: 3 pages of 100; the 6 that finished: one lookup by label.
    assert fake_cloud.calls[("vertex", "ListCustomJobs")] - lists_before == 4
    assert fake_cloud.calls[("vertex", "GetCustomJob")] == 0


def test_the_batches_of_one_cycle_share_one_list_of_active_jobs(backend, fake_cloud):
    refs = submitted(backend, 250, fake_cloud)
    fake_cloud.vertex.complete(refs[0].remote_id)
    lists = fake_cloud.calls[("vertex", "ListCustomJobs")]
    first, second = backend.poll(refs[:125]), backend.poll(refs[125:])
    assert first[refs[0]].status == "COMPLETED" and len(first) == 125 and len(second) == 125
    # 249 active jobs: 3 pages, read once for both batches; the finished one: one lookup by label.
    assert fake_cloud.calls[("vertex", "ListCustomJobs")] - lists == 4


def test_a_list_cut_short_by_the_budget_is_continued_by_the_next_poll(backend, fake_cloud, monkeypatch):
    import time

    from backends.gcp import vertex

    refs = submitted(backend, 250, fake_cloud)
    pages = iter([True, True, False] + [True] * 10)  # the budget runs out before the third page
    monkeypatch.setattr(vertex, "_past", lambda deadline: deadline is not None and not next(pages))
    first = backend.poll(refs, deadline=time.monotonic() + 60)
    assert len(first) == 200, "the two pages read are observations; nothing is inferred from the rest"
    second = backend.poll(refs, deadline=time.monotonic() + 60)
    assert len(second) == 250
    assert fake_cloud.calls[("vertex", "ListCustomJobs")] == 3, "the second poll read only the third page"


def test_the_list_is_scoped_to_the_account_and_read_masked(backend, fake_cloud, monkeypatch):
    refs = submitted(backend, 4, fake_cloud)
    sent = []
    session = backend.session
    original = session.call
    monkeypatch.setattr(session, "call", lambda method, url, **kw: sent.append(kw.get("params")) or original(
        method, url, **kw))
    backend.poll(refs)
    first = sent[0]
    assert first["filter"].startswith('labels.train-account="acme" AND ')
    assert 'state!="JOB_STATE_SUCCEEDED"' in first["filter"] and first["readMask"] == POLL_READ_MASK
    assert first["pageSize"] == 100


def test_another_accounts_jobs_are_not_reported(backend, vertex_config, fake_cloud):
    ours = submitted(backend, 4, fake_cloud)
    theirs = backend_for_snapshot(account_id="globex", name="vertex-ai", config=vertex_config)
    job = spec(job_id="job_" + "f" * 32, account_id="globex")
    other = theirs.submit(job, job.job_id)
    seen = backend.poll([*ours, other])
    assert other not in seen and all(ref in seen for ref in ours)


def test_a_throttled_list_backs_off_and_retries(backend, fake_cloud):
    refs = submitted(backend, 5, fake_cloud)
    fake_cloud.set_faults(seed=7, throttle=0.5, operations={"ListCustomJobs"})
    seen = backend.poll(refs)
    assert fake_cloud.faults.injected[("throttle", "ListCustomJobs")] >= 1
    assert all(seen[ref].status == "PENDING" for ref in refs), "observed after backing off"


def test_an_unreachable_list_observes_nothing(backend, fake_cloud):
    refs = submitted(backend, 5, fake_cloud)
    fake_cloud.set_faults(server_error=1.0, operations={"ListCustomJobs"})
    assert backend.poll(refs) == {}  # the core backs these jobs off; nothing is called failed


def test_no_request_starts_after_the_deadline(backend, fake_cloud):
    import time

    refs = submitted(backend, 5, fake_cloud)
    calls = sum(fake_cloud.calls.values())
    assert backend.poll(refs, deadline=time.monotonic() - 1) == {}
    assert sum(fake_cloud.calls.values()) == calls


def test_pacing_keeps_reads_under_the_quota(backend):
    from backends.gcp import session

    pacer = backend.session.reads
    assert pacer.rate * 60 + pacer.burst <= 600
    assert backend.session.creates.rate * 60 + backend.session.creates.burst <= 60
    assert pacer is session.google_session(backend.config).reads


def test_cancel_goes_through_cancelling(backend, fake_cloud):
    ref, = submitted(backend, 1, fake_cloud)
    fake_cloud.vertex.start(ref.remote_id)
    fake_cloud.vertex.cancel_delay_seconds = 60
    backend.cancel(ref)
    assert backend.poll([ref])[ref].remote_status == "CANCELLING"
    backend.cancel(ref)  # again while it stops: not an error
    fake_cloud.vertex.cancel_delay_seconds = 0
    fake_cloud.vertex._cancel_at[ref.remote_id] = 0
    seen = backend.poll([ref])[ref]
    assert seen.status == "CANCELED" and seen.finished_at is not None


def test_cancelling_a_finished_job_is_a_no_op(backend, fake_cloud):
    ref, = submitted(backend, 1, fake_cloud)
    fake_cloud.vertex.complete(ref.remote_id)
    backend.cancel(ref)
    assert fake_cloud.vertex.state_of(ref.remote_id) == "JOB_STATE_SUCCEEDED"


def test_logs_come_from_cloud_logging(backend, fake_cloud):
    ref, = submitted(backend, 1, fake_cloud)
    fake_cloud.vertex.write_logs(ref.remote_id, [f"step {i}" for i in range(10)])
    assert backend.logs(ref, tail=3) == ["step 7", "step 8", "step 9"]
    fake_cloud.vertex.write_logs(ref.remote_id, ["worker up"], task="workerpool1-0")
    assert backend.logs(ref, tail=2) == ["[workerpool0-0] step 9", "[workerpool1-0] worker up"]


def test_a_job_without_logs_has_an_empty_tail(backend, fake_cloud):
    ref, = submitted(backend, 1, fake_cloud)
    assert backend.logs(ref) == []


def test_console_url_links_the_job(backend):
    ref = RemoteRef(name="job_x", remote_id="projects/123456789012/locations/europe-west4/customJobs/42")
    assert backend.console_url(ref) == ("https://console.cloud.google.com/vertex-ai/locations/europe-west4/"
                                        "training/42/cpu?project=acme-ml")
