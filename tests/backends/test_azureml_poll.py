"""Following Azure ML jobs: the state table, failure text and times from run history (through the
workspace's discovery URL), NotResponding as a warning, a timeout cancel read as EXPIRED, the log tail
from user_logs/std_log*.txt, cancel as a 202 long-running operation (a finished job is a no-op), the
console link, and a poll that keeps to its deadline."""

import time

import pytest

from backends.azure.azureml import AzureMLBackend
from backends.base import RemoteRef
from jobs.models import Job, JobStatus
from jobs.polling import jobs_poll_once
from jobs.submission import job_submit
from tests.backends.azureml_support import TENANT
from tests.backends.invariants import configure, create_jobs
from tests.backends.test_azureml_submit import AZURE_BODY, JOB_ID, backend, spec

pytestmark = pytest.mark.django_db


@pytest.fixture
def submitted(fake_cloud, azure, azure_config):
    name = AzureMLBackend.remote_name(JOB_ID)
    return backend(azure_config).submit(spec(), name)


def observe(config, ref):
    return backend(config).poll([ref])[ref]


@pytest.mark.parametrize("native,train", [
    ("NotStarted", "PENDING"), ("Starting", "PENDING"), ("Preparing", "PENDING"), ("Queued", "PENDING"),
    ("Provisioning", "PENDING"), ("Paused", "PENDING"), ("Running", "IN_PROGRESS"), ("Finalizing", "IN_PROGRESS"),
    ("NotResponding", "IN_PROGRESS"), ("CancelRequested", None), ("Unknown", None), ("Completed", "COMPLETED"),
    ("Failed", "FAILED"), ("Canceled", "CANCELED"),
])
def test_the_state_table(azure, azure_config, submitted, native, train):
    azure.set_state(submitted.name, native)
    seen = observe(azure_config, submitted)
    assert (seen.status, seen.remote_status) == (train, native)
    if native == "NotResponding":
        assert seen.message.startswith("Warning:")


def test_failure_text_and_times_come_from_run_history(fake_cloud, azure, azure_config, submitted):
    azure.start(submitted.name)
    azure.fail(submitted.name, "Execution failed. User process 'python' exited with status code 137.")
    seen = observe(azure_config, submitted)
    assert seen.status == "FAILED"
    assert seen.message == "UserError: Execution failed. User process 'python' exited with status code 137."
    assert seen.started_at and seen.finished_at and seen.started_at <= seen.finished_at
    assert fake_cloud.calls[("azureml", "Discovery")] == 1 and fake_cloud.calls[("azureml", "RunDetails")] == 1
    observe(azure_config, submitted)
    assert fake_cloud.calls[("azureml", "Discovery")] == 1, "the run-history endpoint is cached"


def test_running_jobs_cost_one_read_each(fake_cloud, azure, azure_config, submitted):
    azure.start(submitted.name)
    before = sum(fake_cloud.calls.values())
    assert observe(azure_config, submitted).status == "IN_PROGRESS"
    assert sum(fake_cloud.calls.values()) - before == 1


def test_a_cancel_at_the_timeout_is_expired(fake_cloud, acme, azure, azure_config):
    configure(acme, azure_config, "azure-ml")
    (job_id,) = create_jobs(acme, 1, body=AZURE_BODY)
    job_submit(job_id)
    job = Job.objects.get(pk=job_id)
    azure.start(job.remote_name)
    azure.expire(job.remote_name)
    Job.objects.filter(pk=job_id).update(next_poll_at=job.created_at)
    jobs_poll_once()
    job.refresh_from_db()
    assert job.status == JobStatus.EXPIRED and job.remote_status == "Canceled"


def test_cancel_is_a_long_running_operation(fake_cloud, azure, azure_config, submitted):
    azure.start(submitted.name)
    azure.cancel_delay_seconds = 0.6
    started = time.monotonic()
    backend(azure_config).cancel(submitted)
    assert fake_cloud.calls[("azureml", "CancelJob")] == 1
    assert fake_cloud.calls[("azureml", "GetOperation")] >= 1, "the operation was followed"
    assert time.monotonic() - started < 5
    assert observe(azure_config, submitted).status == "CANCELED"
    backend(azure_config).cancel(submitted)  # a finished job: nothing to do, no error
    assert fake_cloud.calls[("azureml", "CancelJob")] == 2


def test_the_log_tail_reads_the_users_log_files(azure, azure_config, submitted):
    azure.put_log(submitted.name, "user_logs/std_log.txt", [f"step {i}" for i in range(150)])
    azure.put_log(submitted.name, "azureml-logs/70_driver_log.txt", ["not the user's"])
    assert backend(azure_config).logs(submitted, tail=3) == ["step 147", "step 148", "step 149"]
    azure.put_log(submitted.name, "user_logs/std_log_process_1.txt", ["second"])
    assert backend(azure_config).logs(submitted, tail=2) == ["[process_0] step 149", "[process_1] second"]
    assert backend(azure_config).logs(RemoteRef(name=submitted.name), tail=0) == []


def test_console_url_opens_the_job_in_azure_ml_studio(azure_config, submitted):
    url = backend(azure_config).console_url(submitted)
    assert url.startswith(f"https://ml.azure.com/runs/{submitted.name}?wsid=/subscriptions/")
    assert url.endswith(f"&tid={TENANT}")


def test_a_poll_starts_no_request_after_its_deadline(fake_cloud, azure, azure_config, submitted):
    before = fake_cloud.calls[("azureml", "GetJob")]
    assert backend(azure_config).poll([submitted], deadline=time.monotonic() - 1) == {}
    assert fake_cloud.calls[("azureml", "GetJob")] == before


def test_a_job_the_cloud_cannot_read_is_left_out(fake_cloud, azure, azure_config, submitted):
    fake_cloud.set_faults(server_error=1.0, operations={"GetJob"})
    assert backend(azure_config).poll([submitted]) == {}


def test_a_throttled_subscription_stops_the_cycle(fake_cloud, azure, azure_config, submitted):
    """After ARM's 429 (retried once after its Retry-After), no further job is read in this poll."""
    others = [backend(azure_config).submit(spec(job_id=f"job_{i:032x}"), f"train-other-{i}") for i in range(3)]
    fake_cloud.set_faults(throttle=1.0, operations={"GetJob"})
    before = fake_cloud.calls[("azureml", "GetJob")]
    assert backend(azure_config).poll([submitted, *others]) == {}
    assert fake_cloud.calls[("azureml", "GetJob")] - before == 2
