"""The vertex-ai plugin of the poller benchmark (`bench/poller.py --backend vertex-ai`).

Jobs are seeded straight into the fake Vertex AI as Train would have created them (RUNNING, unchanged
for an hour); Train's calls reach the fake through TRAIN_CLOUD_EMULATOR, Train's own credentials
included. The baseline reads each due job with one GET, unpaced.
"""

from django.conf import settings

from backends.gcp import session, vertex
from backends.gcp.config import validate_config
from backends.gcp.vertex import TERMINAL_STATES, VertexBackend, build_request
from tests.fakecloud.vertex import FakeVertex

BACKEND = "vertex-ai"
# Vertex AI resource-management requests (get, list, cancel) per minute per project and region.
READ_QUOTA_PER_MINUTE = 600

CONFIG = {
    "project": "bench-ml", "region": "europe-west4", "service_account": "trainer@bench-ml.iam.gserviceaccount.com",
    "impersonate_service_account": "train-bench@bench-ml.iam.gserviceaccount.com",
    "base_output_uri": "gs://bench-models/out",
    "artifact_registry_repository": "europe-west4-docker.pkg.dev/bench-ml/train-images",
}


def install(cloud) -> FakeVertex:
    fake = cloud.add(FakeVertex()).bind(cloud)
    fake.service_accounts[CONFIG["impersonate_service_account"]] = "train-account=bench"
    cloud.vertex = fake
    return fake


def configure(cloud) -> dict:
    settings.TRAIN_CLOUD_EMULATOR = cloud.url
    session.google_sessions_clear()
    vertex.active_lists_clear()
    return validate_config(dict(CONFIG), previous={})


def seed_job(fake: FakeVertex, job, config: dict) -> None:
    from jobs.services import job_spec

    job.image = "europe-west4-docker.pkg.dev/bench-ml/images/trainer@sha256:" + "ab" * 32
    job.resources = {"machine_type": "g2-standard-12", "accelerator_type": "NVIDIA_L4", "accelerator_count": 1}
    job.remote_status = "JOB_STATE_RUNNING"
    job.remote_name = VertexBackend.remote_name(job.id)
    job.remote_id = fake.insert(build_request(job_spec(job), config), location=config["region"])


def change(fake: FakeVertex, job, *, finish: bool) -> None:
    if finish:
        fake.complete(job.remote_id)
    else:
        fake.set_state(job.remote_id, "JOB_STATE_UPDATING")  # still IN_PROGRESS, another sub-status


def is_active(fake: FakeVertex, job) -> bool:
    return fake.state_of(job.remote_id) not in TERMINAL_STATES


def between_cycles() -> None:
    """The adapter reuses an account's active-job list for up to 15 s; cycles in service are further
    apart than that, so each benchmark cycle lists afresh."""
    vertex.active_lists_clear()


def describe_each() -> None:
    vertex.GET_AT_MOST = 10**9
    session.READS_PER_SECOND, session.READ_BURST = 1e9, 10**9
    session.google_sessions_clear()
    vertex.active_lists_clear()
