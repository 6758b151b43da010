"""`bench/poller.py --backend sagemaker`: running SageMaker training jobs in the fake cloud.

SageMaker answers up to 100 jobs per Search page; the adapter pages through "modified since the last
poll" for an account, and Describes each job only for very small groups (DESCRIBE_AT_MOST).
"""

import os
import time

from backends.aws import sagemaker as adapter
from backends.aws import session
from backends.aws.config import validate_config
from backends.aws.sagemaker import SageMakerBackend, build_request
from jobs.services import job_spec
from tests.fakecloud.sagemaker import AWS_ACCOUNT, FakeSageMaker

# Train's own AWS credentials: dummies (the fake checks no signature), no instance-metadata lookups.
os.environ.update({"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_EC2_METADATA_DISABLED": "true",
                   "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull})

BACKEND = "sagemaker"
# SageMaker publishes no per-account rate for Search or DescribeTrainingJob (its control-plane
# throttling is per account and region, not adjustable, and unstated); Train paces itself instead.
READ_QUOTA_PER_MINUTE = None
REGION = "eu-west-1"
IMAGE = f"{AWS_ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/acme/trainer:v1"
UNCHANGED_FOR_SECONDS = 3600


def install(cloud) -> FakeSageMaker:
    cloud.sagemaker = cloud.add(FakeSageMaker(region=REGION)).bind(cloud)
    return cloud.sagemaker


def configure(cloud) -> dict:
    return validate_config({"region": REGION, "execution_role_arn": f"arn:aws:iam::{AWS_ACCOUNT}:role/Exec",
                            "output_s3_uri": "s3://bench-models/out", "endpoint_url": cloud.url,
                            "sts_endpoint_url": cloud.url, "logs_endpoint_url": cloud.url}, previous={})


def seed_job(fake: FakeSageMaker, job, config: dict) -> None:
    job.image = IMAGE
    job.resources = {"machine_type": "ml.g5.xlarge", "instance_count": 1}
    job.remote_status = "InProgress/Training"
    job.remote_name = SageMakerBackend.remote_name(job.id)
    job.remote_id = f"arn:aws:sagemaker:{REGION}:{AWS_ACCOUNT}:training-job/{job.remote_name}"
    fake.insert(build_request(job_spec(job), job.remote_name, config))
    with fake.cloud.lock:
        fake.jobs[job.remote_name]["LastModifiedTime"] = time.time() - UNCHANGED_FOR_SECONDS


def change(fake: FakeSageMaker, job, *, finish: bool) -> None:
    if finish:
        fake.complete(job.remote_name)
    else:
        fake.set_state(job.remote_name, "InProgress", "Uploading")


def is_active(fake: FakeSageMaker, job) -> bool:
    return fake.status_of(job.remote_name) == "InProgress"


def describe_each() -> None:
    adapter.DESCRIBE_AT_MOST = 10**9
    session.REQUESTS_PER_SECOND, session.REQUEST_BURST = 1e9, 10**9
    session.aws_clients_clear()
