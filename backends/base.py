"""The interface every backend implements, and the neutral types that cross it.

A backend turns a neutral `JobSpec` into its cloud's native request (`build_request`, pure and
golden-tested), creates the remote job idempotently on a name Train derives from the job id (`submit`),
finds it again after a crash (`find`), reports states in batches (`poll`), stops it (`cancel`) and
reads its logs. Nothing here imports a cloud SDK; adapters import theirs lazily.

What the core does around an adapter, so an adapter need not: it pins the configuration a job was
created with and builds the backend from that snapshot for every later call on the job; it calls
`find` before any re-create after a crash; it classifies a cloud-side cancel after the job's max runtime
as EXPIRED (`jobs.observations`), so `poll` reports only what the cloud says; it retries transient
errors on a time budget (the job's pending deadline) and shows `BackendError.waiting` to the user.

What adapters share lives below them, in `backends/common/` (request pacing, the SDK client cache,
the endpoint allow-list), never in one cloud's folder.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, ClassVar
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from registry.mirror import MirrorTarget


@dataclass(frozen=True)
class Mount:
    source: str  # a URI whose scheme the backend accepts (gs://, s3://, azureml://, file://)
    mode: str = "ro"  # "ro" or "rw"

    @property
    def scheme(self) -> str:
        return urlsplit(self.source).scheme


@dataclass(frozen=True)
class JobSpec:
    """What to run, in Train's neutral terms. Built from a Job row; never holds secrets."""

    job_id: str
    account_id: str
    name: str
    image: str
    command: tuple[str, ...]
    args: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    resources: dict = field(default_factory=dict)
    storage_mounts: tuple[Mount, ...] = ()
    max_runtime_seconds: int = 86400
    labels: dict[str, str] = field(default_factory=dict)
    backend_options: dict = field(default_factory=dict)
    image_digest: str = ""


@dataclass(frozen=True)
class RemoteRef:
    """How a backend finds its job again: the name Train chose, and the id the cloud assigned (if any)."""

    name: str
    remote_id: str = ""


@dataclass(frozen=True)
class RemoteStatus:
    """One observation of a remote job. `status` is a Train status, or None for a native state the
    adapter does not know (the job then keeps its current status and the native state is shown)."""

    status: str | None
    remote_status: str
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None


# Returned by `Backend.poll` for a job the cloud reports as not modified since `since`: the job was
# seen (no back-off), and its status stands. Answer it ONLY for a job that the "modified since" query
# covered: same cloud account, region and scope (tag/label) as the job, and a complete answer (every
# page read). A job the query could not have returned (another region, a page limit cut the answer
# short) must be observed directly or left out (the core then backs off), never called UNCHANGED:
# otherwise a job the query misses looks healthy forever.
UNCHANGED = RemoteStatus(status=None, remote_status="", message="unchanged since the last poll")


# BackendError.waiting: why a refused create is worth waiting for, in the words shown to the user
# ("Waiting for quota: <the cloud's message>"). SageMaker ResourceLimitExceeded, Vertex
# RESOURCE_EXHAUSTED and Azure quota errors are WAITING_QUOTA; a cloud out of the machine type is
# WAITING_CAPACITY.
WAITING_QUOTA = "quota"
WAITING_CAPACITY = "capacity"


class BackendError(Exception):
    """A call to the cloud failed. `permanent` means retrying the same request cannot succeed
    (bad request, permission denied); otherwise the caller backs off and tries again, not before
    `retry_after` seconds when the cloud said how long to wait. `waiting` (WAITING_QUOTA,
    WAITING_CAPACITY) marks a refusal that resolves by itself as other jobs finish: the job stays
    PENDING, showing the cloud's message, until its pending deadline."""

    def __init__(self, message: str, *, permanent: bool = False, retry_after: float | None = None,
                 waiting: str | None = None):
        super().__init__(message)
        self.message = message
        self.permanent = permanent and waiting is None
        self.retry_after = retry_after
        self.waiting = waiting


class SpecError(Exception):
    """The job spec or backend configuration is invalid. `errors` maps field paths to messages."""

    def __init__(self, errors: dict[str, list[str] | str]):
        self.errors = {path: [msgs] if isinstance(msgs, str) else list(msgs) for path, msgs in errors.items()}
        super().__init__("; ".join(f"{path}: {' '.join(msgs)}" for path, msgs in self.errors.items()))


class Backend(ABC):
    name: ClassVar[str]
    storage_schemes: ClassVar[tuple[str, ...]]
    # Longest run the backend accepts, in seconds.
    max_runtime_seconds: ClassVar[int] = 7 * 24 * 3600
    # Whether an account must PUT a configuration before submitting to this backend.
    requires_config: ClassVar[bool] = True
    # Bounds of the adaptive poll interval: soon after a change, rarely for long-running jobs.
    poll_interval_bounds: ClassVar[tuple[int, int]] = (30, 300)
    # How long a poll cycle withholds a claimed job from other pollers, in seconds, if shorter than
    # TRAIN_POLL_LEASE_SECONDS: a backend that answers in milliseconds lets a killed poll's jobs be
    # polled again within seconds. None: the setting.
    poll_claim_seconds: ClassVar[int | None] = None
    # The Train account this instance acts for (set by backends.services), so an adapter can scope a
    # batch query to the account's jobs (e.g. by the tag it put on them).
    account_id: str = ""

    def __init__(self, config: dict | None = None):
        self.config = config or {}

    # --- configuration ----------------------------------------------------------------------------
    @classmethod
    def validate_config(cls, config: dict, *, previous: dict) -> dict:
        """Return the cleaned configuration or raise SpecError keyed by field name. `previous` is the
        stored configuration, so values Train generated (an AWS ExternalId) survive an update."""
        if config:
            raise SpecError({next(iter(config)): f"The {cls.name} backend takes no configuration."})
        return {}

    @classmethod
    def verify_config(cls, config: dict, *, account_id: str) -> None:
        """Check a cleaned configuration against the cloud before it is stored: that the account may
        use what it names there (e.g. the resource carries the account's ownership tag). Raise
        SpecError keyed by field name. Runs on every PUT; the default checks nothing."""
        return None

    # Configuration values shown only to account admins (e.g. the ExternalId of a trust policy).
    admin_only_config: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def public_config(cls, config: dict, *, admin: bool) -> dict:
        """The configuration as shown to an account member (`admin`: to an account admin)."""
        return {key: value for key, value in config.items() if admin or key not in cls.admin_only_config}

    @classmethod
    def health(cls) -> dict:
        """What this deployment can say about running this backend's jobs (GET /v1/backends)."""
        return {}

    # --- lifecycle limits ---------------------------------------------------------------------------
    def max_queue_seconds(self, spec: JobSpec) -> int:
        """How long the cloud itself may keep this job queued before it runs or gives up (e.g. a spot
        job's maximum wait); 0 if the backend sets no such limit. A job's pending deadline is never
        shorter than this, so Train does not kill a job the cloud is still legitimately queueing."""
        return 0

    # --- naming -----------------------------------------------------------------------------------
    @classmethod
    def remote_name(cls, job_id: str) -> str:
        """A deterministic remote name: retries reuse it, so the cloud rejects a second create."""
        return "train-" + job_id.removeprefix("job_").replace("_", "-").lower()

    # --- validation -------------------------------------------------------------------------------
    def validate(self, spec: JobSpec) -> None:
        """Raise SpecError for anything this backend cannot run: the checks every backend shares, plus
        the adapter's own (`spec_errors`), all reported at once."""
        errors: dict[str, list[str]] = {}
        accepted = ", ".join(f"{s}://" for s in self.storage_schemes)
        for index, mount in enumerate(spec.storage_mounts):
            if mount.scheme not in self.storage_schemes:
                errors[f"storage_mounts[{index}].source"] = [
                    f"The {self.name} backend accepts only {accepted} sources, not {mount.source!r}."
                ]
        if spec.max_runtime_seconds > self.max_runtime_seconds:
            errors["max_runtime_seconds"] = [
                f"The {self.name} backend allows at most {self.max_runtime_seconds} seconds."
            ]
        for path, message in self.spec_errors(spec).items():
            errors.setdefault(path, [message])
        if errors:
            raise SpecError(errors)

    def spec_errors(self, spec: JobSpec) -> dict[str, str]:
        """The adapter's own checks of `spec`: field path -> message (a cloud's limits and grammar)."""
        return {}

    # --- the remote job ---------------------------------------------------------------------------
    @abstractmethod
    def build_request(self, spec: JobSpec, name: str) -> dict:
        """The native create request for `spec`: pure, no I/O, pinned by golden files."""

    @abstractmethod
    def submit(self, spec: JobSpec, name: str) -> RemoteRef:
        """Create the remote job called `name` for Train job `spec.job_id`, or return the existing one.

        Contract: at most one remote job per Train job, whatever fails. An ambiguous create (a timeout
        or 5xx whose request may have been applied) is looked up (as `find` does) before it is tried
        again, inside this call; a create the cloud refused (throttling) may be retried at once. Raise
        BackendError when unsure: the core keeps the job and, on its next attempt, calls `find` before
        `submit`. A same-named job that belongs to another Train job is a permanent BackendError."""

    @abstractmethod
    def find(self, name: str, *, job_id: str) -> RemoteRef | None:
        """The remote job Train created for `job_id` under `name`, or None if there is none.

        Called before any re-create after a crash, before cancelling a job whose create may have been
        applied, and before stopping it remotely. A cloud with unique names looks up `name`; a cloud
        where names repeat looks up by the `train-job-id` label. A job found but not (yet) provably
        ours (its ownership tag not readable yet) is a transient BackendError; one that belongs to
        another job is a permanent one."""

    @abstractmethod
    def poll(self, refs: list[RemoteRef], *, since: datetime | None = None,
             deadline: float | None = None) -> dict[RemoteRef, RemoteStatus]:
        """Observe many jobs at once, all of one account and configuration snapshot. `since` is when
        the least recently seen of them was last seen (None if one was never seen): an adapter whose
        "modified since" query covers a job may answer UNCHANGED for it (see UNCHANGED). A ref missing
        from the result could not be observed this time (the core backs off). Report what the cloud
        says: a cloud-side cancel is CANCELED with its start and end times; the core turns one that
        came after the job's max runtime, without a cancel request, into EXPIRED.

        `deadline` (a `time.monotonic()` value, or None for no limit) is the poll's time budget: start
        no cloud request after it, and return what was observed so far. Refs left out once the deadline
        has passed count as not polled (they are due again at once), not as unreachable."""

    @abstractmethod
    def cancel(self, ref: RemoteRef) -> None:
        """Ask the cloud to stop the job. Stopping a job that already finished is not an error."""

    @abstractmethod
    def logs(self, ref: RemoteRef, *, tail: int = 100) -> list[str]:
        """The last `tail` lines of the job's log, oldest first."""

    def console_url(self, ref: RemoteRef) -> str:
        return ""

    # --- images ------------------------------------------------------------------------------------
    def mirror_target(self, repository: str) -> MirrorTarget | None:
        """Where this backend's cloud must find an image of Train's repository `repository`
        (`<account>/<path>`) to pull it: a registry and a repository there, a credentials provider
        (asked again when its credential expires), an optional "ensure the repository exists" step,
        and the name progress shows users ("ECR"). The core mirrors the job's pinned digest there
        (registry.mirror) and submits the job with `MirrorTarget.reference(digest)`. None: the
        backend runs Train's images as they are (local), or takes none."""
        return None

    def pin_image(self, image: str) -> str:
        """`image` by digest (`<registry>/<repository>@sha256:…`) when it names a tag in the cloud's own
        registry that Train can read with the account's credentials; otherwise `image` unchanged (the
        cloud then runs the tag as given). The core calls it before a create until it pins, and records
        the answer on the job (`image_digest`, `cloud_image`): every later attempt sends the same
        digest, and the API shows which one ran. Never raises for a registry it cannot read."""
        return image

    @property
    def mirror_on_push(self) -> bool:
        """Whether the account asked for pushed tags to be mirrored before any job needs them."""
        return bool(self.config.get("mirror_on_push"))
