"""The azure-ml plugin of `bench/poller.py --backend azure-ml`: many running Azure ML command jobs in
the fake cloud, polled as Train polls them (one paced GET per due job; see docs/backends/azure-ml.md).

Read budget assumed: ARM's token bucket per subscription, principal and region refills 25 reads/s
(1,500 a minute, bucket 250). Train's client paces itself to 10 reads/s (burst 50) per subscription
and tenant, so a cycle over N due jobs takes at least (N - 50) / 10 seconds and uses 40 % of the budget.
"""

from __future__ import annotations

from django.conf import settings

from backends.azure import client as azure_client_module
from backends.azure.azureml import AzureMLBackend
from backends.azure.config import validate_config
from backends.azure.translation import build_request
from jobs.services import job_spec
from tests.fakecloud.azureml import FakeAzureML

BACKEND = "azure-ml"
READ_QUOTA_PER_MINUTE = 25 * 60
SUBSCRIPTION = "0b1c2d3e-4f50-4617-8293-a4b5c6d7e8f9"
TENANT = "5e1f0c1a-8d3b-4c7e-9f2a-1b2c3d4e5f60"
TERMINAL = ("Completed", "Failed", "Canceled")


def install(cloud) -> FakeAzureML:
    fake = cloud.add(FakeAzureML()).bind(cloud)
    cloud.azureml = fake
    return fake


def configure(cloud) -> dict:
    """Emulator mode: ARM, Entra ID and run history all at the fake, as Train's emulator app."""
    settings.TRAIN_CLOUD_EMULATOR = cloud.url
    azure_client_module.azure_clients_clear()
    cloud.azureml.add_workspace(SUBSCRIPTION, "bench-rg", "bench-ws", tenant=None, region="westeurope",
                                tags={"train-account": "bench"})
    return validate_config({"subscription_id": SUBSCRIPTION, "resource_group": "bench-rg", "workspace": "bench-ws",
                            "region": "westeurope", "tenant_id": TENANT}, previous={})


def seed_job(fake: FakeAzureML, job, config: dict) -> None:
    job.image = "benchimages.azurecr.io/trainer@sha256:" + "ab" * 32
    job.resources = {"machine_type": "Standard_NC24ads_A100_v4", "instance_count": 1}
    job.remote_status = "Running"
    job.remote_name = AzureMLBackend.remote_name(job.id)
    request = build_request(job_spec(job), job.remote_name, config)
    job.remote_id = request["job"]["path"]
    fake.insert(request)


def change(fake: FakeAzureML, job, *, finish: bool) -> None:
    if finish:
        fake.complete(job.remote_name)
    else:
        fake.set_state(job.remote_name, "Finalizing")


def is_active(fake: FakeAzureML, job) -> bool:
    return fake.status_of(job.remote_name) not in TERMINAL


def describe_each() -> None:
    """The baseline: one read per due job, unpaced (Train already reads each due job once; this
    lifts only its pacing)."""
    azure_client_module.READS_PER_SECOND, azure_client_module.READ_BURST = 1e9, 10**9
    azure_client_module.azure_clients_clear()
