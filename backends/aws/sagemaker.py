"""The `sagemaker` backend: Train jobs as Amazon SageMaker training jobs.

Reads top to bottom: SageMaker's limits, the state table, the pure translation of a JobSpec into a
CreateTrainingJob request, then the backend. The training job's name is derived from the Train job id
and is the idempotency key: SageMaker refuses a second job of the same name (ResourceInUse), and a
create whose answer was lost is looked up before it is tried again. boto3 is imported lazily.
"""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime, timedelta

from django.utils.functional import classproperty

from backends.aws import config as aws_config
from backends.aws.errors import THROTTLING_CODES, backend_error, error_code, http_status, is_not_found
from backends.aws.logs import log_tail
from backends.aws.session import aws_clients, aws_read_timeout_seconds
from backends.aws.validation import spec_errors
from backends.base import UNCHANGED, Backend, BackendError, JobSpec, RemoteRef, RemoteStatus, SpecError
from backends.common.settings import poll_bounds
from registry.reference import parse_reference

log = logging.getLogger(__name__)

# --- SageMaker's limits and Train's conventions ----------------------------------------------------
# TrainingJobName: 1-63 characters, [a-zA-Z0-9](-*[a-zA-Z0-9])*, unique per AWS account and region
# forever (training jobs cannot be deleted), so a retry must reuse the name.
NAME_MAX_LENGTH = 63
NAME_RE = re.compile(r"\A[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}\Z")
JOB_ID_TAG = "train-job-id"
ACCOUNT_TAG = "train-account"
MAX_RUNTIME_SECONDS = 28 * 24 * 3600  # StoppingCondition.MaxRuntimeInSeconds ceiling
DEFAULT_VOLUME_SIZE_GB = 50  # the ML storage volume: downloads (File mode), /opt/ml/model and checkpoints
DEFAULT_INPUT_MODE = "FastFile"  # streams S3 on demand: no wait for a full download before start
CHANNEL_PATH = "/opt/ml/input/data/{channel}"
CHECKPOINT_PATH = "/opt/ml/checkpoints"  # synced continuously to CheckpointConfig.S3Uri
# A create is retried inside one submit only a few times; after that the job is released and the
# sweeper resubmits it (finding the job first). Back-off doubles from this base.
CREATE_TRIES = 4
CREATE_BACKOFF_SECONDS = 0.5
# Polling: one Describe per job is cheaper than a Search page up to this many due jobs.
DESCRIBE_AT_MOST = 3
SEARCH_PAGE_SIZE = 100  # Search's maximum
MAX_SEARCH_PAGES = 100
# "Modified since" searches reach back this far before the last poll: Search's index lags the
# training job by seconds, and AWS's clock is not Train's. Re-reading a job costs nothing but bytes.
SEARCH_OVERLAP_SECONDS = 300
# TrainingJobName In "a,b,…": a filter value holds at most 1024 characters.
FILTER_VALUE_MAX_LENGTH = 1024
# ListTags can lag CreateTrainingJob: a same-named job this young whose tag reads empty may be ours.
# Older and still untagged, it was not created by Train.
TAG_READ_LAG = timedelta(minutes=10)
# arn:aws:sagemaker:<region>:<account>:training-job/<name>, the remote id of every job Train created.
TRAINING_JOB_ARN_RE = re.compile(r"\Aarn:aws[a-z-]*:sagemaker:(?P<region>[a-z0-9-]+):(?P<account>\d{12}):training-job/")
ROLE_ACCOUNT_RE = re.compile(r"\Aarn:aws[a-z-]*:iam::(?P<account>\d{12}):")

# --- native states → Train --------------------------------------------------------------------------
# Keyed by (TrainingJobStatus, SecondaryStatus); (status, None) covers every other secondary status.
# Stopping is IN_PROGRESS once training started and PENDING before (see `train_status`). Deleting
# keeps the last status (None). Any state not listed keeps the job's status and is logged.
STATE_MAP = {
    ("InProgress", "Starting"): "PENDING",
    ("InProgress", "Pending"): "PENDING",  # waiting for capacity
    ("InProgress", "LaunchingMLInstances"): "PENDING",
    ("InProgress", "PreparingTrainingStack"): "PENDING",
    ("InProgress", "Downloading"): "PENDING",
    ("InProgress", "DownloadingTrainingImage"): "PENDING",
    ("InProgress", "Training"): "IN_PROGRESS",
    ("InProgress", "Uploading"): "IN_PROGRESS",
    ("InProgress", "Interrupted"): "IN_PROGRESS",  # spot capacity reclaimed; SageMaker resumes
    ("InProgress", "Restarting"): "IN_PROGRESS",
    ("InProgress", "Updating"): "IN_PROGRESS",
    ("Stopping", None): "IN_PROGRESS",
    ("Completed", None): "COMPLETED",
    ("Failed", None): "FAILED",
    ("Stopped", "MaxRuntimeExceeded"): "EXPIRED",
    ("Stopped", "MaxWaitTimeExceeded"): "EXPIRED",
    ("Stopped", None): "CANCELED",
    ("Deleting", None): None,
}
FINISHED_OR_STOPPING = frozenset({"Completed", "Failed", "Stopped", "Stopping", "Deleting"})


def train_status(status: str, secondary: str | None, started: bool) -> str | None:
    mapped = STATE_MAP.get((status, secondary), STATE_MAP.get((status, None)))
    if mapped == "IN_PROGRESS" and status == "Stopping" and not started:
        return "PENDING"  # stopped before training began: it never ran
    return mapped


# --- translation (pure) --------------------------------------------------------------------------------
def training_image(image: str) -> str:
    """`repo@digest` when pinned (SageMaker takes `repo:tag` or `repo@digest`, not both), else as given."""
    ref = parse_reference(image)
    return f"{ref.domain}/{ref.path}@{ref.digest}" if ref.digest else image


def s3_prefix(uri: str) -> str:
    # S3Prefix matches keys by prefix: s3://b/data would also match s3://b/data2/…
    return uri.rstrip("/") + "/"


def _mounts(spec: JobSpec, name: str, config: dict) -> tuple[list, dict, dict | None]:
    """Channels for read-only mounts, the checkpoint for the rw one, and their STORAGE_MOUNT_<i>_PATH."""
    channels, paths, checkpoint = [], {}, None
    for index, mount in enumerate(spec.storage_mounts):
        if mount.mode == "rw":
            checkpoint = {"S3Uri": s3_prefix(mount.source), "LocalPath": CHECKPOINT_PATH}
            paths[f"STORAGE_MOUNT_{index}_PATH"] = CHECKPOINT_PATH
            continue
        channel = f"mount{index}"
        channels.append({
            "ChannelName": channel,
            "DataSource": {"S3DataSource": {"S3DataType": "S3Prefix", "S3Uri": s3_prefix(mount.source),
                                            "S3DataDistributionType": "FullyReplicated"}},
        })
        paths[f"STORAGE_MOUNT_{index}_PATH"] = CHANNEL_PATH.format(channel=channel)
    if checkpoint is None and config.get("checkpoint_s3_uri"):
        checkpoint = {"S3Uri": f"{config['checkpoint_s3_uri']}{name}/", "LocalPath": CHECKPOINT_PATH}
    return channels, paths, checkpoint


def _stopping_condition(spec: JobSpec) -> dict:
    condition = {"MaxRuntimeInSeconds": min(spec.max_runtime_seconds, MAX_RUNTIME_SECONDS)}
    if spec.backend_options.get("spot"):
        # Spot: the wait for capacity counts too; SageMaker requires MaxWait >= MaxRuntime. The job's
        # pending deadline is extended past MaxWait (SageMakerBackend.max_queue_seconds), so SageMaker,
        # not Train, decides when a spot job has waited too long.
        default_wait = min(2 * condition["MaxRuntimeInSeconds"], MAX_RUNTIME_SECONDS)
        condition["MaxWaitTimeInSeconds"] = spec.backend_options.get(
            "max_wait_seconds", max(default_wait, condition["MaxRuntimeInSeconds"]))
    return condition


def build_request(spec: JobSpec, name: str, config: dict) -> dict:
    """The CreateTrainingJob request for `spec`, named `name`, under an account's `config`."""
    channels, mount_paths, checkpoint = _mounts(spec, name, config)
    algorithm = {
        "TrainingImage": training_image(spec.image),
        "TrainingInputMode": spec.backend_options.get("input_mode", DEFAULT_INPUT_MODE),
        "ContainerEntrypoint": list(spec.command),
    }
    if spec.args:
        algorithm["ContainerArguments"] = list(spec.args)
    tags = [{"Key": JOB_ID_TAG, "Value": spec.job_id}, {"Key": ACCOUNT_TAG, "Value": spec.account_id}]
    tags += [{"Key": key, "Value": value} for key, value in sorted(spec.labels.items())]
    request = {
        "TrainingJobName": name,
        "RoleArn": config["execution_role_arn"],
        "AlgorithmSpecification": algorithm,
        "OutputDataConfig": {"S3OutputPath": config["output_s3_uri"]},
        "ResourceConfig": {
            "InstanceType": spec.resources["machine_type"],
            "InstanceCount": spec.resources.get("instance_count", 1),
            "VolumeSizeInGB": spec.backend_options.get("volume_size_gb", DEFAULT_VOLUME_SIZE_GB),
        },
        "StoppingCondition": _stopping_condition(spec),
        "Environment": {**dict(sorted(spec.env.items())), **mount_paths, "TRAIN_JOB_ID": spec.job_id},
        "Tags": tags,
    }
    if channels:
        request["InputDataConfig"] = channels
    if checkpoint:
        request["CheckpointConfig"] = checkpoint
    if spec.backend_options.get("spot"):
        request["EnableManagedSpotTraining"] = True
    return request


def _utc(value: datetime | None) -> datetime | None:
    return value.astimezone(UTC) if value else None


def observation(record: dict) -> RemoteStatus:
    """One DescribeTrainingJob / Search record as a RemoteStatus."""
    status, secondary = record.get("TrainingJobStatus", ""), record.get("SecondaryStatus")
    started = _utc(record.get("TrainingStartTime"))
    mapped = train_status(status, secondary, started is not None)
    transitions = record.get("SecondaryStatusTransitions") or []
    if mapped == "FAILED":
        message = record.get("FailureReason") or "SageMaker reported the job as failed without a reason."
    elif mapped == "EXPIRED":
        message = f"SageMaker stopped the job: {secondary} (StoppingCondition {record.get('StoppingCondition', {})})."
    elif mapped == "CANCELED":
        message = "SageMaker stopped the job on request."
    else:
        message = transitions[-1].get("StatusMessage", "") if transitions else ""
    finished = _utc(record.get("TrainingEndTime")) if mapped in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED") else None
    return RemoteStatus(status=mapped, remote_status=f"{status}/{secondary}" if secondary else status,
                        message=message[:1024], started_at=started, finished_at=finished)


# --- the backend ----------------------------------------------------------------------------------------
class SageMakerBackend(Backend):
    name = "sagemaker"
    storage_schemes = ("s3",)
    max_runtime_seconds = MAX_RUNTIME_SECONDS
    admin_only_config = aws_config.GENERATED  # the ExternalId goes into the account's trust policy

    @classproperty
    def poll_interval_bounds(cls) -> tuple[int, int]:
        return poll_bounds(cls.name)  # TRAIN_SAGEMAKER_POLL_SECONDS

    @classproperty
    def read_timeout_seconds(cls) -> int:
        return aws_read_timeout_seconds()

    # --- configuration ---------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: dict, *, previous: dict) -> dict:
        return aws_config.validate_config(config, previous=previous)

    @classmethod
    def remote_name(cls, job_id: str) -> str:
        name = re.sub(r"[^a-zA-Z0-9]+", "-", super().remote_name(job_id)).strip("-")[:NAME_MAX_LENGTH].strip("-")
        if not NAME_RE.match(name):
            raise SpecError({"id": f"Cannot derive a SageMaker training job name from {job_id!r}."})
        return name

    # --- validation and translation ------------------------------------------------------------------
    def spec_errors(self, spec: JobSpec) -> dict[str, str]:
        return spec_errors(spec, self.config)

    def build_request(self, spec: JobSpec, name: str) -> dict:
        return build_request(spec, name, self.config)

    def max_queue_seconds(self, spec: JobSpec) -> int:
        # A spot job may wait for capacity until MaxWaitTimeInSeconds (then SageMaker stops it,
        # MaxWaitTimeExceeded); an on-demand job has no queue limit of SageMaker's.
        return _stopping_condition(spec).get("MaxWaitTimeInSeconds", 0)

    @property
    def clients(self):
        return aws_clients(self.config)

    def mirror_target(self, repository: str):
        """The account's ECR (backends/aws/ecr.py). Costs one GetAuthorizationToken, whose login the
        target then uses first; BackendError when ECR cannot be reached or refuses."""
        from backends.aws.ecr import ecr_target

        return ecr_target(self.config, repository)

    # --- submission ------------------------------------------------------------------------------------
    def submit(self, spec: JobSpec, name: str) -> RemoteRef:
        from botocore.exceptions import BotoCoreError, ClientError

        request = self.build_request(spec, name)
        for attempt in range(CREATE_TRIES):
            if attempt:
                time.sleep(CREATE_BACKOFF_SECONDS * 2 ** (attempt - 1))
            refused = None  # a throttled last try: its retry_after tells the core when to come back
            try:
                answer = self.clients.sagemaker_create.create_training_job(**request)
                return RemoteRef(name=name, remote_id=answer["TrainingJobArn"])
            except ClientError as exc:
                if error_code(exc) == "ResourceInUse":
                    return self._adopt(name, spec.job_id)
                if error_code(exc) in THROTTLING_CODES:
                    refused = backend_error(exc, "create the training job")
                    continue  # refused, not applied: nothing to look up
                if http_status(exc) < 500:
                    raise backend_error(exc, "create the training job") from exc
                log.warning("create %s: %s; looking it up before another try", name, error_code(exc))
            except BotoCoreError as exc:
                log.warning("create %s: %s; looking it up before another try", name, exc)
            # The create may have been applied although its answer was lost: look before retrying.
            if self._describe(name) is not None:
                return self._adopt(name, spec.job_id)
        if refused is not None:
            raise refused
        raise BackendError(f"SageMaker did not confirm the creation of {name} after {CREATE_TRIES} tries.")

    def _describe(self, name: str, *, client=None) -> dict | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return (client or self.clients.sagemaker).describe_training_job(TrainingJobName=name)
        except ClientError as exc:
            if is_not_found(exc):
                return None
            raise backend_error(exc, f"describe {name}") from exc
        except BotoCoreError as exc:
            raise backend_error(exc, f"describe {name}") from exc

    def _owner(self, record: dict) -> str:
        """The Train job id tagged on a training job ("" if none)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            tags = self.clients.sagemaker.list_tags(ResourceArn=record["TrainingJobArn"]).get("Tags", [])
        except (BotoCoreError, ClientError) as exc:
            raise backend_error(exc, f"read the tags of {record['TrainingJobName']}") from exc
        return next((tag["Value"] for tag in tags if tag["Key"] == JOB_ID_TAG), "")

    def _adopt(self, name: str, job_id: str) -> RemoteRef:
        """The training job called `name` is ours if it carries our job id; otherwise the name is taken."""
        record = self._describe(name)
        if record is None:
            raise BackendError(f"SageMaker reported {name} as existing but cannot describe it yet.")
        return self._if_ours(record, job_id)

    def _if_ours(self, record: dict, job_id: str) -> RemoteRef:
        """A ref to `record` if Train created it for `job_id`. An empty tag on a young job is a lagging
        tag read (retry later); a different tag, or none on an older job, is another job's name."""
        name, owner = record["TrainingJobName"], self._owner(record)
        if owner == job_id:
            return RemoteRef(name=name, remote_id=record["TrainingJobArn"])
        created = record.get("CreationTime")
        if not owner and (created is None or datetime.now(UTC) - created < TAG_READ_LAG):
            raise BackendError(f"SageMaker training job {name} exists but its {JOB_ID_TAG} tag cannot be read "
                               f"yet; trying again.")
        raise BackendError(f"A SageMaker training job named {name} already exists and was not created by Train "
                           f"for this job ({owner or 'no Train tag'}).", permanent=True)

    def find(self, name: str, *, job_id: str) -> RemoteRef | None:
        record = self._describe(name)
        return None if record is None else self._if_ours(record, job_id)

    # --- tracking ----------------------------------------------------------------------------------------
    def poll(self, refs: list[RemoteRef], *, since: datetime | None = None,
             deadline: float | None = None) -> dict[RemoteRef, RemoteStatus]:
        """Few jobs: Describe each. Seen before: one Search for what changed since (the rest is
        UNCHANGED). Some never seen: Search them by name, and Describe those Search does not know yet.
        No request starts after `deadline`; the poll client's timeouts keep one request short."""
        if len(refs) <= DESCRIBE_AT_MOST:
            return self._describe_each(refs, deadline)
        by_name = {ref.name: ref for ref in refs}
        if since is not None:
            window = since - timedelta(seconds=SEARCH_OVERLAP_SECONDS)
            records, complete = self._search([self._scope_filter(), {
                "Name": "LastModifiedTime", "Operator": "GreaterThan",
                "Value": window.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}], deadline)
            found = _observations(records, by_name)
            covered = [ref for ref in refs if ref not in found and self._searchable(ref)]
            if complete:
                found.update({ref: UNCHANGED for ref in covered})
            found.update(self._describe_each([ref for ref in refs if ref not in found and ref not in covered]))
            return found
        found = {}
        for chunk in _name_chunks(list(by_name)):
            records, _ = self._search([self._scope_filter(), {"Name": "TrainingJobName", "Operator": "In",
                                                              "Value": ",".join(chunk)}], deadline)
            found.update(_observations(records, by_name))
        found.update(self._describe_each([ref for ref in refs if ref not in found], deadline))
        return found

    def _searchable(self, ref: RemoteRef) -> bool:
        """Whether this instance's Search can return the job: its ARN names this region and, when a
        role is assumed, that role's AWS account. Only such jobs may be called UNCHANGED."""
        arn = TRAINING_JOB_ARN_RE.match(ref.remote_id)
        role = ROLE_ACCOUNT_RE.match(self.config.get("assume_role_arn", ""))
        return bool(arn) and arn["region"] == self.config.get("region") and (
            role is None or role["account"] == arn["account"])

    def _scope_filter(self) -> dict:
        if self.account_id:
            return {"Name": f"Tags.{ACCOUNT_TAG}", "Operator": "Equals", "Value": self.account_id}
        return {"Name": f"Tags.{JOB_ID_TAG}", "Operator": "Exists"}

    def _search(self, filters: list[dict], deadline: float | None = None) -> tuple[list[dict], bool]:
        """Training jobs matching every filter, oldest change first; `complete` is False when the
        page limit or the deadline cut the answer short (then absent jobs are not known to be unchanged)."""
        from botocore.exceptions import BotoCoreError, ClientError

        records, token = [], None
        for _ in range(MAX_SEARCH_PAGES):
            if _past(deadline):
                return records, False
            try:
                page = self.clients.sagemaker_poll.search(
                    Resource="TrainingJob", SearchExpression={"Filters": filters, "Operator": "And"},
                    SortBy="LastModifiedTime", SortOrder="Ascending", MaxResults=SEARCH_PAGE_SIZE,
                    **({"NextToken": token} if token else {}))
            except (BotoCoreError, ClientError) as exc:
                raise backend_error(exc, "search training jobs") from exc
            records += [result["TrainingJob"] for result in page.get("Results", []) if "TrainingJob" in result]
            token = page.get("NextToken")
            if not token:
                return records, True
        return records, False

    def _describe_each(self, refs: list[RemoteRef], deadline: float | None = None) -> dict[RemoteRef, RemoteStatus]:
        found = {}
        for ref in refs:
            if _past(deadline):
                break  # out of budget: the rest are polled in the next cycle
            try:
                record = self._describe(ref.name, client=self.clients.sagemaker_poll)
            except BackendError as exc:
                log.warning("poll %s: %s", ref.name, exc)  # this job backs off; the others go on
                continue
            if record is not None:
                found[ref] = observation(record)
        return found

    # --- cancel, logs, console -----------------------------------------------------------------------------
    def cancel(self, ref: RemoteRef) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.clients.sagemaker.stop_training_job(TrainingJobName=ref.name)
        except ClientError as exc:
            if error_code(exc) == "ValidationException":
                # Stopping a job that already finished is refused; that is not an error for Train.
                record = self._describe(ref.name)
                if record is not None and record["TrainingJobStatus"] in FINISHED_OR_STOPPING:
                    return
            raise backend_error(exc, f"stop {ref.name}") from exc
        except BotoCoreError as exc:
            raise backend_error(exc, f"stop {ref.name}") from exc

    def logs(self, ref: RemoteRef, *, tail: int = 100) -> list[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return log_tail(self.clients.logs, ref.name, tail)
        except (BotoCoreError, ClientError) as exc:
            raise backend_error(exc, f"read the logs of {ref.name}") from exc

    def console_url(self, ref: RemoteRef) -> str:
        region = self.config.get("region", "")
        return f"https://{region}.console.aws.amazon.com/sagemaker/home?region={region}#/jobs/{ref.name}"


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline


def _observations(records: list[dict], by_name: dict[str, RemoteRef]) -> dict[RemoteRef, RemoteStatus]:
    # A search answers for the whole account; keep the jobs this poll asked about.
    return {by_name[r["TrainingJobName"]]: observation(r) for r in records if r["TrainingJobName"] in by_name}


def _name_chunks(names: list[str]) -> list[list[str]]:
    """Names grouped so each comma-joined group fits one filter value."""
    chunks, current, length = [], [], 0
    for name in names:
        if current and length + 1 + len(name) > FILTER_VALUE_MAX_LENGTH:
            chunks.append(current)
            current, length = [], 0
        length += len(name) + (1 if current else 0)
        current.append(name)
    return [*chunks, current] if current else chunks
