"""The `vertex-ai` backend: Train jobs as Vertex AI CustomJobs, over Vertex's v1 REST API.

Reads top to bottom: the state table, the pure translation of a JobSpec into a CustomJob, then the
backend. Vertex assigns each CustomJob a numeric id and creates a second job for a repeated create, so
the create carries the label `train-job-id`: before every retry of a create, and in `find`, Train lists
by that label and adopts what it finds. The CustomJob's resource name is the job's `remote_id`.
google-auth is imported lazily (decision 0070: a thin REST adapter, no aiplatform SDK).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime

from django.utils.functional import classproperty

from backends.base import Backend, BackendError, JobSpec, RemoteRef, RemoteStatus, SpecError
from backends.common.settings import poll_bounds
from backends.gcp import config as gcp_config
from backends.gcp import validation
from backends.gcp.errors import GoogleApiError, backend_error
from backends.gcp.logs import job_number, log_tail
from backends.gcp.session import google_session
from registry.reference import parse_reference

log = logging.getLogger(__name__)

JOB_ID_LABEL = "train-job-id"
ACCOUNT_LABEL = "train-account"
# scheduling.timeout: Vertex's default (and Train's ceiling) is 7 days.
MAX_RUNTIME_SECONDS = 7 * 24 * 3600
GCS_FUSE_ROOT = "/gcs"  # Cloud Storage FUSE: gs://B/P is /gcs/B/P in every replica, read and write
CREATE_TRIES = 3
CREATE_BACKOFF_SECONDS = 0.5
# Polling: a GET per job is cheaper than a list up to this many due jobs.
GET_AT_MOST = 3
LIST_PAGE_SIZE = 100
MAX_LIST_PAGES = 200
# Jobs that left the active list are looked up by label, this many per list call (OR-ed clauses).
LABELS_PER_LOOKUP = 25
# What a poll reads of each CustomJob: its state and what the state table and the user see.
POLL_READ_MASK = "name,state,error,labels,createTime,startTime,endTime,updateTime"
STATE_PREFIX = "JOB_STATE_"
# A complete list of an account's active jobs serves later poll batches for this long (and for at
# most half the shortest poll interval), per process.
ACTIVE_LIST_REUSE_SECONDS = 15
ACTIVE_LISTS_KEPT = 256
# A list the poll budget cut short is continued by later polls for this long, then started afresh.
ACTIVE_LIST_CONTINUE_SECONDS = 300


@dataclass(frozen=True)
class ActiveList:
    """An account's active jobs as listed since `started`; `token` continues an incomplete list."""

    started: float
    jobs: list = field(default_factory=list)
    token: str = ""
    complete: bool = False


_active_lists: OrderedDict[tuple, ActiveList] = OrderedDict()
_active_lock = threading.Lock()

# --- native states → Train -------------------------------------------------------------------------
# CANCELLING keeps IN_PROGRESS (PENDING if it never started) and shows that a cancel is under way; it can
# still end SUCCEEDED or FAILED. CANCELLED is CANCELED: the core reads a cancel Train did not request,
# after the job's max runtime, as EXPIRED (scheduling.timeout is enforced by cancelling). PAUSED is a
# sub-status of IN_PROGRESS. UNSPECIFIED, and any state not listed, keeps the job's status.
STATE_MAP = {
    "JOB_STATE_QUEUED": "PENDING",
    "JOB_STATE_PENDING": "PENDING",
    "JOB_STATE_RUNNING": "IN_PROGRESS",
    "JOB_STATE_UPDATING": "IN_PROGRESS",
    "JOB_STATE_PAUSED": "IN_PROGRESS",
    "JOB_STATE_CANCELLING": "IN_PROGRESS",
    "JOB_STATE_SUCCEEDED": "COMPLETED",
    "JOB_STATE_FAILED": "FAILED",
    "JOB_STATE_PARTIALLY_SUCCEEDED": "FAILED",
    "JOB_STATE_CANCELLED": "CANCELED",
    "JOB_STATE_EXPIRED": "EXPIRED",
    "JOB_STATE_UNSPECIFIED": None,
}
TERMINAL_STATES = frozenset({"JOB_STATE_SUCCEEDED", "JOB_STATE_FAILED", "JOB_STATE_PARTIALLY_SUCCEEDED",
                             "JOB_STATE_CANCELLED", "JOB_STATE_EXPIRED"})
ACTIVE_FILTER = " AND ".join(f'state!="{state}"' for state in sorted(TERMINAL_STATES))


def train_status(state: str, started: bool) -> str | None:
    mapped = STATE_MAP.get(state)
    if mapped == "IN_PROGRESS" and state == "JOB_STATE_CANCELLING" and not started:
        return "PENDING"
    return mapped


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value.replace("Z", "+00:00")) if value else None


def observation(job: dict) -> RemoteStatus:
    """One CustomJob (GET or list) as a RemoteStatus."""
    state = job.get("state", "JOB_STATE_UNSPECIFIED")
    started = _time(job.get("startTime"))
    mapped = train_status(state, started is not None)
    error = job.get("error") or {}
    shown = state.removeprefix(STATE_PREFIX)
    if mapped in ("FAILED", "EXPIRED"):
        message = error.get("message") or f"Vertex AI reported the job as {shown} without a reason."
    elif mapped == "CANCELED":
        message = error.get("message") or "Vertex AI cancelled the job."
    elif state == "JOB_STATE_CANCELLING":
        message = "Cancel requested: Vertex AI is stopping the job."
    elif state == "JOB_STATE_PAUSED":
        message = "Vertex AI paused the job; it resumes where it stopped."
    else:
        message = ""
    finished = _time(job.get("endTime")) if mapped in ("COMPLETED", "FAILED", "CANCELED", "EXPIRED") else None
    return RemoteStatus(status=mapped, remote_status=shown, message=message[:1024], started_at=started,
                        finished_at=finished)


# --- translation (pure) ------------------------------------------------------------------------------
def image_uri(image: str) -> str:
    """`repo@sha256:…` when pinned: Vertex refuses `repo:tag@sha256:…` ("Invalid image URI")."""
    ref = parse_reference(image)
    return f"{ref.domain}/{ref.path}@{ref.digest}" if ref.digest else image


def gcs_path(uri: str) -> str:
    return GCS_FUSE_ROOT + "/" + uri.removeprefix("gs://").rstrip("/")


def _seconds(value: int) -> str:
    return f"{int(value)}s"  # google.protobuf.Duration in JSON


def _labels(spec: JobSpec) -> dict[str, str]:
    labels = {validation.label_value(k): validation.label_value(v) for k, v in sorted(spec.labels.items())}
    labels.update({JOB_ID_LABEL: spec.job_id, ACCOUNT_LABEL: validation.label_value(spec.account_id)})
    return labels


def _machine_spec(spec: JobSpec) -> dict:
    machine = {"machineType": spec.resources["machine_type"]}
    if spec.resources.get("accelerator_type"):
        machine["acceleratorType"] = spec.resources["accelerator_type"]  # enum by name, as REST accepts
        machine["acceleratorCount"] = int(spec.resources.get("accelerator_count") or 1)
    return machine


def _scheduling(spec: JobSpec) -> dict:
    scheduling = {"timeout": _seconds(min(spec.max_runtime_seconds, MAX_RUNTIME_SECONDS))}
    strategy = validation.strategy(spec)
    if strategy != "STANDARD":
        scheduling["strategy"] = strategy
    if strategy == "FLEX_START":
        scheduling["maxWaitDuration"] = _seconds(spec.backend_options.get(
            "max_wait_seconds", validation.DEFAULT_FLEX_START_WAIT_SECONDS))
    return scheduling


def build_request(spec: JobSpec, config: dict) -> dict:
    """The CustomJob to create for `spec` under an account's `config` (the body of customJobs.create)."""
    env = {**dict(sorted(spec.env.items())),
           **{f"STORAGE_MOUNT_{index}_PATH": gcs_path(mount.source) for index, mount in enumerate(spec.storage_mounts)},
           "TRAIN_JOB_ID": spec.job_id}
    container = {"imageUri": image_uri(spec.image), "command": list(spec.command)}
    if spec.args:
        container["args"] = list(spec.args)
    container["env"] = [{"name": name, "value": value} for name, value in env.items()]
    pool = {"machineSpec": _machine_spec(spec), "replicaCount": "1", "containerSpec": container}
    if "boot_disk_size_gb" in spec.backend_options:
        pool["diskSpec"] = {"bootDiskType": "pd-ssd", "bootDiskSizeGb": spec.backend_options["boot_disk_size_gb"]}
    pools = [pool]
    workers = int(spec.resources.get("instance_count", 1)) - 1
    if workers > 0:  # pool 0 is the chief (one replica); pool 1 the other replicas, the same machine
        pools.append({**pool, "replicaCount": str(workers)})  # int64 goes out as a JSON string
    job_spec = {"workerPoolSpecs": pools, "scheduling": _scheduling(spec),
                "serviceAccount": config["service_account"],
                "baseOutputDirectory": {"outputUriPrefix": f"{config['base_output_uri']}{spec.job_id}/"}}
    if config.get("network"):
        job_spec["network"] = config["network"]
    return {"displayName": spec.name[:validation.DISPLAY_NAME_MAX_LENGTH], "labels": _labels(spec),
            "jobSpec": job_spec}


# --- the backend ---------------------------------------------------------------------------------------
class VertexBackend(Backend):
    name = "vertex-ai"
    storage_schemes = ("gs",)
    max_runtime_seconds = MAX_RUNTIME_SECONDS

    @classproperty
    def poll_interval_bounds(cls) -> tuple[int, int]:
        return poll_bounds(cls.name)  # TRAIN_VERTEX_AI_POLL_SECONDS

    # --- configuration ---------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: dict, *, previous: dict) -> dict:
        return gcp_config.validate_config(config, previous=previous)

    @classmethod
    def verify_config(cls, config: dict, *, account_id: str) -> None:
        from backends.gcp.ownership import verify_owner

        verify_owner(config, account_id=account_id)

    @classmethod
    def remote_name(cls, job_id: str) -> str:
        # Vertex names jobs itself; Train's handle is the job id, which is also its train-job-id label.
        return job_id

    # --- validation and translation ----------------------------------------------------------------
    def spec_errors(self, spec: JobSpec) -> dict[str, str]:
        return validation.spec_errors(spec)

    def build_request(self, spec: JobSpec, name: str) -> dict:
        return build_request(spec, self.config)

    def max_queue_seconds(self, spec: JobSpec) -> int:
        # FLEX_START queues for capacity until maxWaitDuration; then Vertex gives up on the job.
        if validation.strategy(spec) != "FLEX_START":
            return 0
        return spec.backend_options.get("max_wait_seconds", validation.DEFAULT_FLEX_START_WAIT_SECONDS)

    @property
    def session(self):
        return google_session(self.config)

    def _url(self, path: str) -> str:
        return f"{self.session.target.vertex_url}/v1/{path}"

    @property
    def parent(self) -> str:
        return self.session.target.parent

    def mirror_target(self, repository: str):
        """The account's Artifact Registry repository, pushed to as the impersonated service account."""
        from backends.gcp.artifact_registry import artifact_registry_target
        from backends.gcp.session import emulator

        parts = gcp_config.artifact_registry_parts(self.config.get("artifact_registry_repository"))
        if parts is None:
            raise BackendError("The configured artifact_registry_repository is invalid.", permanent=True)
        try:
            return artifact_registry_target(
                project=parts["project"], region=parts["location"], repository=parts["repository"],
                service_account=self.config["impersonate_service_account"], path=repository,
                iam_endpoint_url=emulator() or None, registry_endpoint_url=emulator() or None)
        except SpecError as exc:
            raise BackendError(f"Cannot mirror to Artifact Registry: {exc}", permanent=True) from exc

    # --- submission --------------------------------------------------------------------------------
    def pin_image(self, image: str) -> str:
        from backends.gcp.images import pinned_image

        return pinned_image(self.config, image)

    def submit(self, spec: JobSpec, name: str) -> RemoteRef:
        request = self.build_request(spec, name)
        last: BackendError | None = None
        for attempt in range(CREATE_TRIES):
            if attempt:
                time.sleep(CREATE_BACKOFF_SECONDS * 2 ** (attempt - 1))
                # The last create may have been applied although its answer was lost (or it was refused:
                # a list costs one read either way). Vertex would create a second job: look first.
                found = self.find(name, job_id=spec.job_id)
                if found is not None:
                    return found
            try:
                answer = self.session.call("POST", self._url(f"{self.parent}/customJobs"), body=request, create=True)
                return RemoteRef(name=name, remote_id=answer["name"])
            except GoogleApiError as exc:
                last = backend_error(exc, "create the custom job")
                if last.permanent:
                    raise last from exc
            except Exception as exc:  # a timeout or lost connection: applied or not, nobody knows
                last = backend_error(exc, "create the custom job")
                if last.permanent:
                    raise last from exc
            log.warning("create %s: %s; looking it up before another try", name, last.message)
        raise last or BackendError(f"Vertex AI did not confirm the creation of {name}.")

    def find(self, name: str, *, job_id: str) -> RemoteRef | None:
        """The CustomJob labelled train-job-id=<job_id>, the oldest if a lost answer left several."""
        jobs, complete = self._list(f'labels.{JOB_ID_LABEL}="{job_id}"', read_mask="name,labels,createTime")
        if not complete:
            raise BackendError(f"Could not list Vertex AI jobs labelled {JOB_ID_LABEL}={job_id}.")
        ours = sorted((j for j in jobs if j.get("labels", {}).get(JOB_ID_LABEL) == job_id),
                      key=lambda j: (j.get("createTime", ""), j["name"]))
        if len(ours) > 1:
            log.error("%s: %d Vertex AI jobs carry its label; following the oldest", job_id, len(ours))
        return RemoteRef(name=name, remote_id=ours[0]["name"]) if ours else None

    def _list(self, filter_: str, *, read_mask: str = POLL_READ_MASK,
              deadline: float | None = None) -> tuple[list[dict], bool]:
        """CustomJobs of the configured project and region matching `filter_`; `complete` is False when
        the page limit or the deadline cut the answer short. Raises BackendError if the first page fails."""
        jobs, token = self._pages(filter_, "", read_mask=read_mask, deadline=deadline)
        return jobs, token == ""

    def _pages(self, filter_: str, token: str, *, read_mask: str = POLL_READ_MASK,
               deadline: float | None = None) -> tuple[list[dict], str | None]:
        """The jobs on the pages from `token` on, and the token to continue from: "" when the list is
        complete, None when it stopped without one (a page failed). Raises BackendError if the first
        page read fails."""
        jobs = []
        for page_number in range(MAX_LIST_PAGES):
            if _past(deadline):
                return jobs, token or None
            params = {"filter": filter_, "pageSize": LIST_PAGE_SIZE, "readMask": read_mask}
            if token:
                params["pageToken"] = token
            try:
                page = self.session.call("GET", self._url(f"{self.parent}/customJobs"), params=params,
                                         deadline=deadline)
            except Exception as exc:
                if page_number == 0:
                    raise backend_error(exc, "list custom jobs") from exc
                log.warning("list custom jobs, page %d: %s", page_number + 1, exc)
                return jobs, token
            jobs += page.get("customJobs", [])
            token = page.get("nextPageToken", "")
            if not token:
                return jobs, ""
        return jobs, token

    # --- tracking ----------------------------------------------------------------------------------
    def poll(self, refs: list[RemoteRef], *, since: datetime | None = None,
             deadline: float | None = None) -> dict[RemoteRef, RemoteStatus]:
        """Few jobs: GET each. Many: one list of the account's active jobs (paged, readMask), which
        observes every active job; a job missing from a complete list has finished, and those are read
        with one list per LABELS_PER_LOOKUP of them by label. Vertex has no "updated since" filter, so
        every answer is a direct observation (never UNCHANGED)."""
        if len(refs) <= GET_AT_MOST:
            return self._get_each(refs, deadline)
        by_id = {ref.remote_id: ref for ref in refs if ref.remote_id}
        try:
            active, complete = self._active_jobs(deadline)
        except BackendError as exc:
            log.warning("poll: %s", exc.message)  # these jobs back off; another cycle tries again
            return {}
        found = {by_id[job["name"]]: observation(job) for job in active if job["name"] in by_id}
        if not complete:
            return found  # a job not on the pages read may still be active: not known to have finished
        missing = [ref for ref in by_id.values() if ref not in found]
        for start in range(0, len(missing), LABELS_PER_LOOKUP):
            chunk = missing[start:start + LABELS_PER_LOOKUP]
            clauses = " OR ".join(f'labels.{JOB_ID_LABEL}="{ref.name}"' for ref in chunk)
            try:
                jobs, _ = self._list(f"{self._scope_filter()} AND ({clauses})", deadline=deadline)
            except BackendError as exc:
                log.warning("poll: %s", exc.message)
                break
            found.update({by_id[job["name"]]: observation(job) for job in jobs if job["name"] in by_id})
        return found

    def _active_jobs(self, deadline: float | None) -> tuple[list[dict], bool]:
        """The account's active jobs, and whether the list is complete. A complete list read less than
        `reuse` seconds ago serves the other batches of the same poll cycle (the core polls at most
        TRAIN_POLL_BATCH_SIZE jobs per call), so a cycle over N jobs reads the list once, not N / batch
        times. A list the poll budget cut short is continued from its page token by the next call, for
        ACTIVE_LIST_CONTINUE_SECONDS, so an account with more active jobs than one budget can list still
        gets through them. A job such a list shows active may have finished since: it is seen at its
        next poll."""
        reuse = min(ACTIVE_LIST_REUSE_SECONDS, self.poll_interval_bounds[0] / 2)
        key = (self.session.target, self._scope_filter())
        now = time.monotonic()
        with _active_lock:
            entry = _active_lists.get(key)
        if entry is not None and entry.complete and now - entry.started < reuse:
            return entry.jobs, True
        if entry is None or entry.complete or not entry.token or now - entry.started >= ACTIVE_LIST_CONTINUE_SECONDS:
            entry = ActiveList(started=now)
        more, token = self._pages(f"{self._scope_filter()} AND {ACTIVE_FILTER}", entry.token, deadline=deadline)
        entry = ActiveList(started=entry.started, jobs=entry.jobs + more, token=token or "",
                           complete=token == "")
        with _active_lock:
            _active_lists[key] = entry
            _active_lists.move_to_end(key)
            while len(_active_lists) > ACTIVE_LISTS_KEPT:
                _active_lists.popitem(last=False)
        return entry.jobs, entry.complete

    def _scope_filter(self) -> str:
        if self.account_id:
            return f'labels.{ACCOUNT_LABEL}="{validation.label_value(self.account_id)}"'
        return f"labels.{JOB_ID_LABEL}:*"

    def _get(self, ref: RemoteRef, deadline: float | None = None) -> dict | None:
        try:
            return self.session.call("GET", self._url(ref.remote_id), deadline=deadline)
        except GoogleApiError as exc:
            if exc.not_found:
                return None
            raise backend_error(exc, f"read {ref.remote_id}") from exc
        except Exception as exc:
            raise backend_error(exc, f"read {ref.remote_id}") from exc

    def _get_each(self, refs: list[RemoteRef], deadline: float | None) -> dict[RemoteRef, RemoteStatus]:
        found = {}
        for ref in refs:
            if _past(deadline):
                break
            try:
                job = self._get(ref, deadline)
            except BackendError as exc:
                log.warning("poll %s: %s", ref.remote_id, exc.message)  # this job backs off; the others go on
                continue
            if job is not None:
                found[ref] = observation(job)
        return found

    # --- cancel, logs, console -----------------------------------------------------------------------
    def cancel(self, ref: RemoteRef) -> None:
        try:
            self.session.call("POST", self._url(f"{ref.remote_id}:cancel"), body={})
        except GoogleApiError as exc:
            if exc.http_status in (400, 409) or exc.status == "FAILED_PRECONDITION":
                # Cancelling a job that already finished (or is stopping) is refused; not an error for Train.
                job = self._get(ref)
                if job is not None and (job.get("state") in TERMINAL_STATES
                                        or job.get("state") == "JOB_STATE_CANCELLING"):
                    return
            raise backend_error(exc, f"cancel {ref.remote_id}") from exc
        except Exception as exc:
            raise backend_error(exc, f"cancel {ref.remote_id}") from exc

    def logs(self, ref: RemoteRef, *, tail: int = 100) -> list[str]:
        if not ref.remote_id:
            return []
        try:
            return log_tail(self.session, self.config["project"], ref.remote_id, tail)
        except Exception as exc:
            raise backend_error(exc, f"read the logs of {ref.remote_id}") from exc

    def console_url(self, ref: RemoteRef) -> str:
        if not ref.remote_id:
            return ""
        region, project = self.config.get("region", ""), self.config.get("project", "")
        return (f"https://console.cloud.google.com/vertex-ai/locations/{region}/training/"
                f"{job_number(ref.remote_id)}/cpu?project={project}")


def active_lists_clear() -> None:
    """Forget the reused active-job lists (tests)."""
    with _active_lock:
        _active_lists.clear()


def _past(deadline: float | None) -> bool:
    return deadline is not None and time.monotonic() >= deadline
