"""Following SageMaker jobs: the state table, batch polling (Describe for a few, Search by name for
jobs never seen, Search by last-modified time otherwise), throttling, and what the poller records."""

import time
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from backends.aws.sagemaker import SEARCH_PAGE_SIZE, SageMakerBackend, build_request, observation, train_status
from backends.base import UNCHANGED, BackendError, RemoteRef
from jobs.models import Job, JobEvent, JobStatus, Submission
from jobs.polling import jobs_poll_once
from tests.backends.test_sagemaker_request import ECR_IMAGE, spec
from tests.support.jobs import make_job, run_queued


@pytest.mark.parametrize(("status", "secondary", "started", "expected"), [
    ("InProgress", "Starting", False, "PENDING"),
    ("InProgress", "Pending", False, "PENDING"),
    ("InProgress", "LaunchingMLInstances", False, "PENDING"),
    ("InProgress", "PreparingTrainingStack", False, "PENDING"),
    ("InProgress", "Downloading", False, "PENDING"),
    ("InProgress", "DownloadingTrainingImage", False, "PENDING"),
    ("InProgress", "Training", True, "IN_PROGRESS"),
    ("InProgress", "Uploading", True, "IN_PROGRESS"),
    ("InProgress", "Interrupted", True, "IN_PROGRESS"),
    ("InProgress", "Restarting", True, "IN_PROGRESS"),
    ("InProgress", "Updating", True, "IN_PROGRESS"),
    ("Stopping", "Stopping", True, "IN_PROGRESS"),
    ("Stopping", "Stopping", False, "PENDING"),
    ("Completed", "Completed", True, "COMPLETED"),
    ("Failed", "Failed", False, "FAILED"),
    ("Stopped", "Stopped", True, "CANCELED"),
    ("Stopped", "MaxRuntimeExceeded", True, "EXPIRED"),
    ("Stopped", "MaxWaitTimeExceeded", False, "EXPIRED"),
    ("Deleting", "Completed", True, None),
    ("Rebooting", "Whatever", True, None),
])
def test_state_table(status, secondary, started, expected):
    assert train_status(status, secondary, started) == expected


def test_a_failure_carries_the_reason_and_the_clouds_times():
    start, end = datetime(2025, 5, 1, 10, tzinfo=UTC), datetime(2025, 5, 1, 11, tzinfo=UTC)
    seen = observation({"TrainingJobStatus": "Failed", "SecondaryStatus": "Failed", "TrainingStartTime": start,
                        "TrainingEndTime": end, "FailureReason": "AlgorithmError: ExecuteUserScriptError"})
    assert (seen.status, seen.remote_status) == ("FAILED", "Failed/Failed")
    assert seen.message == "AlgorithmError: ExecuteUserScriptError"
    assert (seen.started_at, seen.finished_at) == (start, end)


@pytest.fixture
def backend(sagemaker_config):
    backend = SageMakerBackend(sagemaker_config)
    backend.account_id = "acme"
    return backend


def submit_many(backend, count, first=0) -> list[RemoteRef]:
    jobs = [spec(job_id=f"job_{index:032x}") for index in range(first, first + count)]
    return [backend.submit(job, SageMakerBackend.remote_name(job.job_id)) for job in jobs]


def age(fake_cloud, refs, seconds):
    """Pretend the jobs last changed `seconds` ago."""
    with fake_cloud.lock:
        for ref in refs:
            fake_cloud.sagemaker.jobs[ref.name]["LastModifiedTime"] = time.time() - seconds


def test_a_few_jobs_are_described_one_by_one(backend, fake_cloud):
    refs = submit_many(backend, 3)
    seen = backend.poll(refs)
    assert {s.status for s in seen.values()} == {"PENDING"} and len(seen) == 3
    assert fake_cloud.calls[("sagemaker", "DescribeTrainingJob")] == 3
    assert fake_cloud.calls[("sagemaker", "Search")] == 0


def test_jobs_never_seen_are_searched_by_name(backend, fake_cloud):
    refs = submit_many(backend, 12)
    fake_cloud.sagemaker.start(refs[0].name)
    seen = backend.poll(refs, since=None)
    assert len(seen) == 12 and seen[refs[0]].status == "IN_PROGRESS"
    assert fake_cloud.calls[("sagemaker", "Search")] == 1
    assert fake_cloud.calls[("sagemaker", "DescribeTrainingJob")] == 0


def test_seen_jobs_are_searched_by_last_change_and_the_rest_is_unchanged(backend, fake_cloud):
    refs = submit_many(backend, 10)
    age(fake_cloud, refs, 3600)
    fake_cloud.sagemaker.complete(refs[3].name)
    fake_cloud.sagemaker.fail(refs[7].name, "CapacityError: no ml.g5.xlarge")
    seen = backend.poll(refs, since=datetime.now(UTC) - timedelta(seconds=60))
    assert seen[refs[3]].status == "COMPLETED"
    assert seen[refs[7]].message == "CapacityError: no ml.g5.xlarge"
    assert all(seen[ref] is UNCHANGED for index, ref in enumerate(refs) if index not in (3, 7))
    assert fake_cloud.calls[("sagemaker", "Search")] == 1


def test_search_follows_every_page(backend, fake_cloud):
    jobs = [spec(job_id=f"job_{index:032x}") for index in range(2 * SEARCH_PAGE_SIZE + 5)]
    for job in jobs:  # seeded directly: creating 205 jobs at the client's paced rate takes a minute
        fake_cloud.sagemaker.insert(build_request(job, SageMakerBackend.remote_name(job.job_id), backend.config))
    refs = [RemoteRef(name=SageMakerBackend.remote_name(job.job_id)) for job in jobs]
    seen = backend.poll(refs, since=datetime.now(UTC) - timedelta(seconds=60))
    assert all(status.status == "IN_PROGRESS" for status in seen.values()) and len(seen) == len(refs)
    assert fake_cloud.calls[("sagemaker", "Search")] == 3


def test_the_search_is_scoped_to_the_account(backend, fake_cloud, sagemaker_config):
    ours = submit_many(backend, 5)
    other = SageMakerBackend(sagemaker_config)
    other.account_id = "globex"
    other.submit(spec(job_id="job_" + "9" * 32, account_id="globex"), "train-" + "9" * 32)
    backend.poll(ours, since=datetime.now(UTC))
    assert "train-" + "9" * 32 not in fake_cloud.sagemaker.observed


def test_throttled_polls_are_retried_with_backoff(backend, fake_cloud):
    refs = submit_many(backend, 6)
    fake_cloud.set_faults(seed=7, throttle=0.5, operations={"Search"})
    seen = backend.poll(refs, since=datetime.now(UTC))
    assert len(seen) == 6
    assert fake_cloud.faults.injected[("throttle", "Search")] >= 1
    assert fake_cloud.calls[("sagemaker", "Search")] == 1 + fake_cloud.faults.injected[("throttle", "Search")]


def test_persistent_throttling_is_a_transient_error_with_retry_after(backend):
    refs = [RemoteRef(name=f"train-{index}") for index in range(5)]
    with Stubber(backend.clients.sagemaker_poll) as stub:
        stub.add_client_error("search", "ThrottlingException", "Rate exceeded", 400)
        with pytest.raises(BackendError) as caught:
            backend.poll(refs, since=datetime.now(UTC))
    assert not caught.value.permanent and caught.value.retry_after


def test_a_job_the_cloud_does_not_know_is_left_out(backend, fake_cloud):
    refs = [*submit_many(backend, 1), RemoteRef(name="train-missing")]
    seen = backend.poll(refs)
    assert list(seen) == refs[:1]


# --- through the poller -------------------------------------------------------------------------------
@pytest.fixture
def submitted_jobs(sagemaker_account, sagemaker_config):
    backend = SageMakerBackend(sagemaker_config)
    backend.account_id = sagemaker_account.pk
    jobs = []
    for _ in range(5):
        job = make_job(sagemaker_account, backend="sagemaker", image=f"{ECR_IMAGE}:v1", image_digest="",
                       resources={"machine_type": "ml.g5.xlarge"})
        job.remote_name = SageMakerBackend.remote_name(job.id)
        ref = backend.submit(spec(job_id=job.id), job.remote_name)
        Job.objects.filter(pk=job.pk).update(remote_name=job.remote_name, remote_id=ref.remote_id,
                                             submission=Submission.SUBMITTED, next_poll_at=job.created_at)
        jobs.append(Job.objects.get(pk=job.pk))
    return jobs


def put_log_lines(moto_url, stream, lines):
    logs = boto3.client("logs", region_name="eu-west-1", endpoint_url=moto_url)
    group = "/aws/sagemaker/TrainingJobs"
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)
    logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    logs.put_log_events(logGroupName=group, logStreamName=stream,
                        logEvents=[{"timestamp": now + i, "message": line} for i, line in enumerate(lines)])


@pytest.mark.django_db
def test_the_poller_records_what_sagemaker_reports(submitted_jobs, fake_cloud, moto_url):
    running, done, failed, expired, pending = submitted_jobs
    sm = fake_cloud.sagemaker
    sm.start(running.remote_name)
    sm.start(done.remote_name)
    sm.complete(done.remote_name)
    sm.fail(failed.remote_name, "AlgorithmError: ExecuteUserScriptError: exit 1")
    sm.set_state(expired.remote_name, "Stopped", "MaxRuntimeExceeded")
    put_log_lines(moto_url, f"{failed.remote_name}/algo-1-1700000000", ["loading data", "Traceback", "KeyError: x"])

    report = jobs_poll_once()
    assert report.claimed == 5 and report.changed == 4
    assert run_queued("jobs.tasks.run_job_effects") == 1, "entering FAILED fetches the log tail"
    rows = {job.pk: Job.objects.get(pk=job.pk) for job in submitted_jobs}
    assert (rows[running.pk].status, rows[running.pk].remote_status) == (JobStatus.IN_PROGRESS, "InProgress/Training")
    cloud_start = sm.jobs[running.remote_name]["TrainingStartTime"]
    assert abs(rows[running.pk].started_at.timestamp() - cloud_start) < 0.001, "started_at comes from the cloud"
    assert (rows[done.pk].status, rows[done.pk].remote_status) == (JobStatus.COMPLETED, "Completed/Completed")
    assert rows[done.pk].finished_at is not None
    assert rows[failed.pk].status == JobStatus.FAILED
    assert rows[failed.pk].status_message == "AlgorithmError: ExecuteUserScriptError: exit 1"
    assert rows[failed.pk].log_tail == ["loading data", "Traceback", "KeyError: x"]
    assert rows[expired.pk].status == JobStatus.EXPIRED
    assert (rows[pending.pk].status, rows[pending.pk].remote_status) == (JobStatus.PENDING, "InProgress/Starting")
    assert JobEvent.objects.filter(to_status__in=["COMPLETED", "FAILED", "EXPIRED"]).count() == 3
    assert fake_cloud.calls[("sagemaker", "Search")] == 1, "one search for five jobs never seen"


@pytest.mark.django_db
def test_the_second_poll_asks_only_for_what_changed(submitted_jobs, fake_cloud):
    jobs_poll_once()
    age(fake_cloud, [RemoteRef(job.remote_name) for job in submitted_jobs], 3600)
    fake_cloud.sagemaker.start(submitted_jobs[0].remote_name)
    Job.objects.update(next_poll_at=submitted_jobs[0].created_at)
    report = jobs_poll_once()
    assert report.claimed == 5 and report.changed == 1
    assert fake_cloud.calls[("sagemaker", "Search")] == 2
    assert Job.objects.get(pk=submitted_jobs[0].pk).status == JobStatus.IN_PROGRESS
