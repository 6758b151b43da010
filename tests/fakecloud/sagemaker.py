"""A fake of SageMaker's training-job API (AWS JSON 1.1, `X-Amz-Target: SageMaker.<Operation>`).

Unlike moto it behaves like the service where Train depends on it: names are unique forever
(ResourceInUse), a new job stays InProgress until the test moves it, Stop goes through Stopping and
is refused for a finished job, and Search filters (And), sorts and pages. Tests script states with
`set_state` / `start` / `complete` / `fail`, and read `creates`, `observed` and the core's counters.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime

from tests.fakecloud.core import DeliveryLog, FakeRequest, FakeResponse

AWS_ACCOUNT = "123456789012"
REGION_RE = re.compile(r"/([a-z]{2}-[a-z]+-\d)/")
NAME_RE = re.compile(r"\A[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}\Z")
TERMINAL = ("Completed", "Failed", "Stopped")
JSON = "application/x-amz-json-1.1"
SEARCHABLE_TIMES = ("LastModifiedTime", "CreationTime", "TrainingStartTime", "TrainingEndTime")
START_AFTER_SECONDS = 1.0  # standalone: how long a created job stays Starting


class SageMakerError(Exception):
    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def _error(status: int, code: str, message: str) -> FakeResponse:
    return FakeResponse.json(status, {"__type": f"com.amazonaws.sagemaker#{code}", "message": message}, JSON)


def _time_value(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class FakeSageMaker(DeliveryLog):
    name = "sagemaker"

    def __init__(self, *, region: str = "eu-west-1", stop_delay_seconds: float = 0.0,
                 run_seconds: float | None = None):
        self.region = region  # requests signed for another region go to another fake (or none)
        self.stop_delay_seconds = stop_delay_seconds
        # Standalone: every created job starts START_AFTER_SECONDS after its create and completes
        # run_seconds after it, applied when the job is next read. None: jobs move only when scripted.
        self.run_seconds = run_seconds
        # Instance type -> instances the account may run at once (ResourceLimitExceeded beyond).
        self.instance_quota: dict[str, int] = {}
        self.jobs: dict[str, dict] = {}  # name -> the record DescribeTrainingJob returns
        self.tags: dict[str, list] = {}  # arn -> tags
        self.creates: list[dict] = []  # every applied CreateTrainingJob request, in order
        self._init_deliveries()
        self.cancel_gates: dict[str, threading.Event] = {}  # name -> StopTrainingJob waits until it is set
        self._stop_at: dict[str, float] = {}
        self._shown: list[str] = []  # records in the answer being built (dispatch runs under the lock)

    # --- the protocol ------------------------------------------------------------------------------
    def matches(self, request: FakeRequest) -> bool:
        # The SigV4 credential scope names the region the client was built for.
        signed_for = REGION_RE.search(request.headers.get("Authorization", ""))
        return request.headers.get("X-Amz-Target", "").startswith("SageMaker.") and (
            signed_for is None or signed_for.group(1) == self.region)

    def operation(self, request: FakeRequest) -> tuple[str, str]:
        operation = request.headers["X-Amz-Target"].split(".", 1)[1]
        return operation, request.json().get("TrainingJobName", "")

    def gate(self, operation: str, resource: str) -> None:
        if operation == "StopTrainingJob" and resource in self.cancel_gates:
            self.cancel_gates[resource].wait(timeout=30)

    def fault(self, kind: str) -> FakeResponse:
        if kind == "throttle":
            return _error(429, "ThrottlingException", "Rate exceeded")
        return _error(500, "InternalFailure", "An internal error occurred.")

    def dispatch(self, operation: str, request: FakeRequest) -> FakeResponse:
        method = getattr(self, f"_op_{operation}", None)
        if method is None:
            return _error(400, "UnknownOperationException", f"{operation} is not faked")
        self._shown = []
        try:
            response = FakeResponse.json(200, method(request.json()), JSON)
        except SageMakerError as exc:
            return _error(exc.status, exc.code, exc.message)
        shown = self._shown
        response.on_delivery = lambda: self._record_delivery(shown)
        return response

    # --- operations ------------------------------------------------------------------------------------
    def _op_CreateTrainingJob(self, body: dict) -> dict:
        name = body.get("TrainingJobName", "")
        for required in ("TrainingJobName", "RoleArn", "OutputDataConfig"):
            if required not in body:
                raise SageMakerError("ValidationException", f"{required} is required")
        if not NAME_RE.match(name):
            raise SageMakerError("ValidationException", f"Invalid TrainingJobName {name!r}")
        if name in self.jobs:
            raise SageMakerError("ResourceInUse", "Training job names must be unique within an AWS account and "
                                 f"region, and a training job with this name already exists ({self._arn(name)})")
        self._check_quota(body.get("ResourceConfig", {}))
        self.creates.append(body)
        now = time.time()
        record = {key: value for key, value in body.items() if key != "Tags"}
        record.update(TrainingJobArn=self._arn(name), TrainingJobStatus="InProgress", SecondaryStatus="Starting",
                      CreationTime=now, LastModifiedTime=now, ModelArtifacts={"S3ModelArtifacts": ""},
                      SecondaryStatusTransitions=[{"Status": "Starting", "StartTime": now,
                                                   "StatusMessage": "Preparing the instances for training"}])
        self.jobs[name] = record
        self.tags[record["TrainingJobArn"]] = list(body.get("Tags", []))
        return {"TrainingJobArn": record["TrainingJobArn"]}

    def _op_DescribeTrainingJob(self, body: dict) -> dict:
        return self._show(self._job(body.get("TrainingJobName", "")))

    def _op_StopTrainingJob(self, body: dict) -> dict:
        job = self._job(body.get("TrainingJobName", ""))
        if job["TrainingJobStatus"] != "InProgress":
            raise SageMakerError("ValidationException", "The request was rejected because the training job is in "
                                 f"status {job['TrainingJobStatus']}.")
        self._move(job, "Stopping", "Stopping", "Stopping the training job")
        self._stop_at[job["TrainingJobName"]] = time.time() + self.stop_delay_seconds
        return {}

    def _op_ListTags(self, body: dict) -> dict:
        arn = body.get("ResourceArn", "")
        if arn not in self.tags:
            raise SageMakerError("ValidationException", "Requested resource not found.")
        return {"Tags": self.tags[arn]}

    def _op_ListTrainingJobs(self, body: dict) -> dict:
        jobs = sorted((self._settle(j) for j in self.jobs.values()), key=lambda j: j["CreationTime"], reverse=True)
        if contains := body.get("NameContains"):
            jobs = [j for j in jobs if contains in j["TrainingJobName"]]
        if status := body.get("StatusEquals"):
            jobs = [j for j in jobs if self._settle(j)["TrainingJobStatus"] == status]
        if after := body.get("LastModifiedTimeAfter"):
            jobs = [j for j in jobs if j["LastModifiedTime"] > float(after)]
        page, token = self._page(jobs, body)
        keys = ("TrainingJobName", "TrainingJobArn", "CreationTime", "TrainingEndTime", "LastModifiedTime",
                "TrainingJobStatus", "SecondaryStatus")
        return {"TrainingJobSummaries": [{k: j[k] for k in keys if k in j} for j in page], **token}

    def _op_Search(self, body: dict) -> dict:
        if body.get("Resource") != "TrainingJob":
            raise SageMakerError("ValidationException", "only Resource=TrainingJob is faked")
        expression = body.get("SearchExpression", {})
        if expression.get("Operator", "And") != "And" or expression.get("NestedFilters") or \
                expression.get("SubExpressions"):
            raise SageMakerError("ValidationException", "only a flat And of Filters is faked")
        filters = expression.get("Filters", [])
        jobs = [j for j in self.jobs.values() if all(self._matches(self._settle(j), f) for f in filters)]
        sort_by = body.get("SortBy", "CreationTime")
        descending = body.get("SortOrder") == "Descending"
        jobs.sort(key=lambda j: (j.get(sort_by, 0), j["TrainingJobName"]), reverse=descending)
        page, token = self._page(jobs, body, default_size=10)
        return {"Results": [{"TrainingJob": {**self._show(j), "Tags": self.tags[j["TrainingJobArn"]]}} for j in page],
                **token}

    def _check_quota(self, resources: dict) -> None:
        kind, wanted = resources.get("InstanceType", ""), int(resources.get("InstanceCount", 1))
        if kind not in self.instance_quota:
            return
        used = sum(int(j["ResourceConfig"].get("InstanceCount", 1)) for j in self.jobs.values()
                   if j.get("ResourceConfig", {}).get("InstanceType") == kind
                   and self._settle(j)["TrainingJobStatus"] in ("InProgress", "Stopping"))
        limit = self.instance_quota[kind]
        if used + wanted > limit:
            raise SageMakerError("ResourceLimitExceeded", f"The account-level service limit '{kind} for training "
                                 f"job usage' is {limit} Instances, with current utilization of {used} Instances "
                                 f"and a request delta of {wanted} Instances. Please use AWS Service Quotas to "
                                 f"request an increase for this quota.")

    # --- helpers ------------------------------------------------------------------------------------------
    def _arn(self, name: str) -> str:
        return f"arn:aws:sagemaker:{self.region}:{AWS_ACCOUNT}:training-job/{name}"

    def _job(self, name: str) -> dict:
        if name not in self.jobs:
            raise SageMakerError("ValidationException", "Requested resource not found.")
        return self._settle(self.jobs[name])

    def _settle(self, job: dict) -> dict:
        """Apply a due Stopping -> Stopped (and, standalone, a due start or completion) before anyone
        reads the job, dated when it was due."""
        now = time.time()
        stop_at = self._stop_at.get(job["TrainingJobName"])
        if job["TrainingJobStatus"] == "Stopping" and stop_at is not None and now >= stop_at:
            self._move(job, "Stopped", "Stopped", "The training job was stopped")
        if self.run_seconds is not None and job["TrainingJobStatus"] == "InProgress":
            start_at = job["CreationTime"] + min(START_AFTER_SECONDS, self.run_seconds)
            end_at = job["CreationTime"] + self.run_seconds
            if now >= start_at and "TrainingStartTime" not in job:
                self._move(job, "InProgress", "Training", "Training image download completed. Training in progress.",
                           at=start_at)
            if now >= end_at:
                self._move(job, "Completed", "Completed", "Training job completed", at=end_at)
        return job

    def _show(self, job: dict) -> dict:
        self._shown.append(job["TrainingJobName"])
        return dict(job)

    def _page(self, items: list, body: dict, default_size: int = 100) -> tuple[list, dict]:
        start = int(body.get("NextToken") or 0)
        size = int(body.get("MaxResults") or default_size)
        end = start + size
        return items[start:end], ({"NextToken": str(end)} if end < len(items) else {})

    def _matches(self, job: dict, condition: dict) -> bool:
        name, operator, value = condition["Name"], condition.get("Operator", "Equals"), condition.get("Value")
        if name.startswith("Tags."):
            actual = next((t["Value"] for t in self.tags[job["TrainingJobArn"]] if t["Key"] == name[5:]), None)
        elif name in ("TrainingJobName", "TrainingJobStatus", "SecondaryStatus", *SEARCHABLE_TIMES):
            actual = job.get(name)
        else:
            raise SageMakerError("ValidationException", f"filter on {name} is not faked")
        if operator == "Exists":
            return actual is not None
        if operator == "NotExists":
            return actual is None
        if actual is None:
            return False
        if name in SEARCHABLE_TIMES:
            actual, value = float(actual), _time_value(value)
        comparisons = {
            "Equals": lambda: actual == value, "NotEquals": lambda: actual != value,
            "In": lambda: actual in value.split(","), "Contains": lambda: value in actual,
            "GreaterThan": lambda: actual > value, "GreaterThanOrEqualTo": lambda: actual >= value,
            "LessThan": lambda: actual < value, "LessThanOrEqualTo": lambda: actual <= value,
        }
        return comparisons[operator]()

    def _move(self, job: dict, status: str, secondary: str, message: str, failure_reason: str = "",
              at: float | None = None) -> None:
        now = time.time() if at is None else at
        transitions = job["SecondaryStatusTransitions"]
        if transitions and "EndTime" not in transitions[-1]:
            transitions[-1]["EndTime"] = now
        transitions.append({"Status": secondary, "StartTime": now, "StatusMessage": message})
        job.update(TrainingJobStatus=status, SecondaryStatus=secondary, LastModifiedTime=now)
        if secondary == "Training" and "TrainingStartTime" not in job:
            job["TrainingStartTime"] = now
        if status in TERMINAL:
            job["TrainingEndTime"] = now
        if failure_reason:
            job["FailureReason"] = failure_reason

    # --- scripting API for tests (thread-safe through the cloud's lock) -------------------------------
    def bind(self, cloud) -> FakeSageMaker:
        self.cloud = cloud
        return self

    def set_state(self, name: str, status: str, secondary: str, *, message: str = "", failure_reason: str = ""):
        with self.cloud.lock:
            self._move(self.jobs[name], status, secondary, message or secondary, failure_reason)

    def start(self, name: str) -> None:
        self.set_state(name, "InProgress", "Training",
                       message="Training image download completed. Training in progress.")

    def complete(self, name: str) -> None:
        self.set_state(name, "Completed", "Completed", message="Training job completed")

    def fail(self, name: str, reason: str = "AlgorithmError: ExecuteUserScriptError") -> None:
        self.set_state(name, "Failed", "Failed", message="Training job failed", failure_reason=reason)

    def status_of(self, name: str) -> str:
        with self.cloud.lock:
            return self._settle(self.jobs[name])["TrainingJobStatus"]

    def names(self) -> list[str]:
        with self.cloud.lock:
            return list(self.jobs)

    # The neutral part of the scripting API (tests/backends/invariants.CloudFake).
    backend = "sagemaker"
    cancel_operation = "StopTrainingJob"

    def is_running(self, name: str) -> bool:
        return self.status_of(name) == "InProgress"

    @staticmethod
    def remote_key(job) -> str:
        return job.remote_name

    def finished_at(self, name: str) -> float | None:
        with self.cloud.lock:
            return self.jobs[name].get("TrainingEndTime")

    def jobs_tagged(self, job_id: str) -> list[str]:
        """Names of the training jobs carrying `train-job-id=<job_id>` (the ≤1 invariant)."""
        with self.cloud.lock:
            return [j["TrainingJobName"] for j in self.jobs.values()
                    if {"Key": "train-job-id", "Value": job_id} in self.tags[j["TrainingJobArn"]]]

    def insert(self, request: dict, *, status: str = "InProgress", secondary: str = "Training") -> None:
        """Add a job without a create call (benchmarks seeding thousands of jobs)."""
        with self.cloud.lock:
            self._op_CreateTrainingJob(request)
            self.creates.pop()
            self._move(self.jobs[request["TrainingJobName"]], status, secondary, secondary)


class RegionalSageMaker:
    """SageMaker in every region, for the standalone fake cloud: the first request signed for a region
    creates that region's FakeSageMaker (so ARNs name the region the account configured)."""

    name = "sagemaker"

    def __init__(self, *, run_seconds: float | None = None):
        self.run_seconds = run_seconds
        self.regions: dict[str, FakeSageMaker] = {}
        self._lock = threading.Lock()

    def bind(self, cloud) -> RegionalSageMaker:
        self.cloud = cloud
        return self

    def region(self, region: str) -> FakeSageMaker:
        with self._lock:
            if region not in self.regions:
                fake = FakeSageMaker(region=region, run_seconds=self.run_seconds)
                self.regions[region] = fake.bind(self.cloud)
            return self.regions[region]

    def _fake(self, request: FakeRequest) -> FakeSageMaker:
        signed_for = REGION_RE.search(request.headers.get("Authorization", ""))
        return self.region(signed_for.group(1) if signed_for else "us-east-1")

    def matches(self, request: FakeRequest) -> bool:
        return request.headers.get("X-Amz-Target", "").startswith("SageMaker.")

    def operation(self, request: FakeRequest) -> tuple[str, str]:
        return self._fake(request).operation(request)

    def gate(self, operation: str, resource: str) -> None:
        pass  # nothing is held at a barrier when no test drives the fake

    def fault(self, kind: str) -> FakeResponse:
        return next(iter(self.regions.values()), FakeSageMaker()).fault(kind)

    def dispatch(self, operation: str, request: FakeRequest) -> FakeResponse:
        return self._fake(request).dispatch(operation, request)


def start_moto(cloud) -> str:
    """moto in this process as the cloud's fallback (STS, CloudWatch Logs, the ECR API), stopped with
    the cloud; its URL."""
    import logging

    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    cloud.closers.append(server.stop)
    host, port = server.get_host_and_port()
    cloud.fallback_url = f"http://{host}:{port}"
    return cloud.fallback_url


def start_registry(cloud) -> str:
    """Debian's Distribution registry (`docker-registry`) behind the cloud's /v2/, without auth, storing
    in a temporary directory; stopped and removed with the cloud. Its URL, or "" when it is not on PATH."""
    import shutil
    import socket
    import subprocess
    import tempfile
    from pathlib import Path

    binary = shutil.which("docker-registry")
    if binary is None:
        return ""
    work = Path(tempfile.mkdtemp(prefix="fakecloud-registry-"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    (work / "config.yml").write_text(
        "version: 0.1\nlog:\n  level: error\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n"
        # Relative Locations: uploads continue through the cloud's URL, not the registry's own.
        f"http:\n  addr: 127.0.0.1:{port}\n  relativeurls: true\n")
    proc = subprocess.Popen([binary, "serve", str(work / "config.yml")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)

    def stop():
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(work, ignore_errors=True)

    cloud.closers.append(stop)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:  # until it listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("docker-registry did not start") from None
            time.sleep(0.1)
    cloud.routes.append(("/v2/", url))
    return url


def standalone(cloud, *, run_seconds: float) -> list[str]:
    """Serve SageMaker in every region from `cloud`, each created training job starting after about a
    second and completing `run_seconds` after its create; STS, CloudWatch Logs and the ECR API by moto
    behind the same URL, and ECR's registry (where Train mirrors images) at its /v2/ when Debian's
    Distribution registry is installed."""
    moto = cloud.fallback_url or start_moto(cloud)
    registry = start_registry(cloud)
    cloud.sagemaker = cloud.add(RegionalSageMaker(run_seconds=run_seconds)).bind(cloud)
    return [
        f"sagemaker: SageMaker training jobs (any region, account {AWS_ACCOUNT}) at {cloud.url}; each job starts "
        f"after {min(START_AFTER_SECONDS, run_seconds):g} s and completes {run_seconds:g} s after its create",
        f"sagemaker: STS, CloudWatch Logs and the ECR API at {cloud.url} (served by moto, {moto})",
        f"sagemaker: ECR's registry for mirrored images at {cloud.url}/v2/ (Distribution, {registry})" if registry
        else "sagemaker: no docker-registry on PATH: images pushed to Train cannot be mirrored to the emulated ECR",
    ]
