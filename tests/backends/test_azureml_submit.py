"""Submitting to Azure ML exactly once: the environment version, then one job PUT; a PUT whose answer
was lost is looked up by name (comparing properties.train_job_id) before any retry; a name taken by
another job is a permanent error; the workspace guard runs before every submit; throttling waits for
Retry-After; a quota refusal keeps the job waiting PENDING; and jobs created through the service reach
the fake with the pinned configuration."""

import pytest
from django.utils import timezone

from backends.azure.azureml import AzureMLBackend
from backends.azure.translation import build_request
from backends.base import BackendError, JobSpec
from jobs.models import Job, JobStatus, Submission
from jobs.services import job_spec
from jobs.submission import job_submit
from tests.backends.azureml_support import ACR_IMAGE, DIGEST
from tests.backends.invariants import configure, create_jobs

pytestmark = pytest.mark.django_db

JOB_ID = "job_00000000000000000000000000000abc"
AZURE_BODY = {
    "backend": "azure-ml", "image": f"{ACR_IMAGE}@{DIGEST}", "command": ["python", "train.py"],
    "args": ["--epochs", "1"], "env": {}, "labels": {"suite": "azure"},
    "resources": {"machine_type": "Standard_NC6s_v3", "instance_count": 1},
    "storage_mounts": [{"source": "azureml://datastores/corpus/paths/web", "mode": "ro"}],
    "max_runtime_seconds": 3600, "backend_options": {},
}


def spec(job_id=JOB_ID) -> JobSpec:
    return JobSpec(job_id=job_id, account_id="acme", name="sft", image=f"{ACR_IMAGE}@{DIGEST}",
                   command=("python", "train.py"), resources={"machine_type": "Standard_NC6s_v3"})


def backend(config) -> AzureMLBackend:
    instance = AzureMLBackend(config)
    instance.account_id = "acme"
    return instance


def test_one_submit_is_one_environment_put_and_one_job_put(fake_cloud, azure, azure_config):
    name = AzureMLBackend.remote_name(JOB_ID)
    ref = backend(azure_config).submit(spec(), name)
    assert ref.name == name and ref.remote_id.endswith(f"/jobs/{name}")
    assert azure.creates == [build_request(spec(), name, azure_config)["job"]["body"]]
    assert fake_cloud.calls[("azureml", "PutEnvironmentVersion")] == 1
    assert fake_cloud.calls[("azureml", "PutJob")] == 1
    assert azure.status_of(name) == "NotStarted"
    again = backend(azure_config).submit(spec(), name)  # a retry of the same job: the same remote job
    assert again == ref and len(azure.creates) == 1


def test_a_put_whose_answer_was_lost_is_found_not_repeated(fake_cloud, azure, azure_config):
    fake_cloud.set_faults(timeout_after_apply=1.0, operations={"PutJob"})
    name = AzureMLBackend.remote_name(JOB_ID)
    ref = backend(azure_config).submit(spec(), name)
    assert ref.name == name
    assert fake_cloud.calls[("azureml", "PutJob")] == 1, "looked up by name before another PUT"
    assert fake_cloud.calls[("azureml", "GetJob")] >= 1 and len(azure.creates) == 1


def test_server_errors_are_looked_up_then_retried(fake_cloud, azure, azure_config, monkeypatch):
    monkeypatch.setattr("backends.azure.azureml.CREATE_BACKOFF_SECONDS", 0.05)
    fake_cloud.set_faults(server_error=1.0, operations={"PutJob"})
    name = AzureMLBackend.remote_name(JOB_ID)
    with pytest.raises(BackendError) as raised:
        backend(azure_config).submit(spec(), name)
    assert not raised.value.permanent
    assert fake_cloud.calls[("azureml", "PutJob")] == 4 and fake_cloud.calls[("azureml", "GetJob")] == 4
    assert azure.creates == []


def test_throttling_honours_retry_after_and_succeeds(fake_cloud, azure, azure_config):
    fake_cloud.set_faults(seed=3, throttle=0.5, operations={"PutJob"})
    ref = backend(azure_config).submit(spec(), AzureMLBackend.remote_name(JOB_ID))
    assert ref.name and len(azure.creates) == 1


def test_a_name_held_by_another_job_is_a_permanent_error(fake_cloud, azure, azure_config):
    name = AzureMLBackend.remote_name(JOB_ID)
    backend(azure_config).submit(spec(job_id="job_ffffffffffffffffffffffffffffffff"), name)
    with pytest.raises(BackendError) as raised:
        backend(azure_config).submit(spec(), name)
    assert raised.value.permanent and "not created by Train for this job" in raised.value.message
    assert backend(azure_config).find(name, job_id="job_ffffffffffffffffffffffffffffffff").name == name
    with pytest.raises(BackendError):
        backend(azure_config).find(name, job_id=JOB_ID)
    assert backend(azure_config).find("train-missing", job_id=JOB_ID) is None


def test_the_guard_runs_before_every_submit(fake_cloud, azure, azure_config):
    """A workspace whose tag changed since the PUT gets no job."""
    azure.workspaces[next(iter(azure.workspaces))]["tags"] = {"train-account": "globex"}
    with pytest.raises(BackendError) as raised:
        backend(azure_config).submit(spec(), AzureMLBackend.remote_name(JOB_ID))
    assert raised.value.permanent and "train-account=acme" in raised.value.message
    assert fake_cloud.calls[("azureml", "PutJob")] == 0 and azure.creates == []


def test_jobs_created_through_the_service_are_submitted_with_every_field(fake_cloud, acme, azure, azure_config):
    configure(acme, azure_config, "azure-ml")
    (job_id,) = create_jobs(acme, 1, body=AZURE_BODY)
    job_submit(job_id)
    job = Job.objects.get(pk=job_id)
    assert job.submission == Submission.SUBMITTED and job.remote_name == AzureMLBackend.remote_name(job_id)
    assert azure.creates == [build_request(job_spec(job), job.remote_name, azure_config)["job"]["body"]]
    assert azure.jobs_tagged(job_id) == [job.remote_name]


def test_a_job_refused_for_quota_waits_pending_and_is_submitted_once_it_frees(fake_cloud, acme, azure,
                                                                              azure_config):
    configure(acme, azure_config, "azure-ml")
    (job_id,) = create_jobs(acme, 1, body=AZURE_BODY)
    azure.quota_full = True
    for _ in range(3):
        Job.objects.filter(pk=job_id).update(next_submit_at=timezone.now())  # its back-off is over
        job_submit(job_id)
        job = Job.objects.get(pk=job_id)
        assert (job.status, job.submission) == (JobStatus.PENDING, Submission.WAITING)
    assert job.status_message.startswith("Waiting for quota: ")
    assert "QuotaExceeded: Not enough quota available for Standard_NC6s_v3" in job.status_message
    assert azure.creates == []

    azure.quota_full = False
    Job.objects.filter(pk=job_id).update(next_submit_at=timezone.now())
    job_submit(job_id)
    job = Job.objects.get(pk=job_id)
    assert (job.status, job.submission, job.status_message) == (JobStatus.PENDING, Submission.SUBMITTED, "")
    assert azure.jobs_tagged(job_id) == [job.remote_name]
