"""The `azure-ml` backend: Train jobs as Azure ML command jobs, through ARM's REST API.

Reads top to bottom: the workspace guard, submission (environment version, then the job, exactly
once), tracking, cancel, logs and images. The job name is derived from the Train job id and is the
idempotency key: Azure refuses a second PUT of a name with another body, and a PUT whose answer was
lost is looked up by name, comparing the immutable `properties.train_job_id`, before another try.
"""

from __future__ import annotations

import logging
import re
import time

import requests
from django.utils.functional import classproperty

from backends.azure import api
from backends.azure import config as azure_config
from backends.azure.client import POLL_ATTEMPTS, AzureClient, azure_client
from backends.azure.errors import AzureError, backend_error
from backends.azure.runs import cached_api_host, log_tail, remember_api_host
from backends.azure.states import TERMINAL, native_status, observation
from backends.azure.translation import (
    ACCOUNT_TAG,
    JOB_ID_PROPERTY,
    build_request,
    workspace_of,
)
from backends.azure.validation import spec_errors
from backends.base import Backend, BackendError, JobSpec, RemoteRef, RemoteStatus, SpecError
from backends.common.settings import poll_bounds

log = logging.getLogger(__name__)

# Job names: a letter or digit, then letters, digits, '-' and '_', at most 255; Train uses lower case.
NAME_RE = re.compile(r"\A[a-z0-9][a-z0-9_-]{0,254}\Z")
CREATE_TRIES = 4
CREATE_BACKOFF_SECONDS = 1.0
# How long a cancel follows Azure's long-running operation before leaving the rest to polling.
CANCEL_FOLLOW_SECONDS = 5.0
CANCEL_FOLLOW_INTERVAL_SECONDS = 0.5
# Azure ML's longest command job timeout Train offers: 28 days, like the longest elsewhere.
MAX_RUNTIME_SECONDS = 28 * 24 * 3600


class AzureMLBackend(Backend):
    name = "azure-ml"
    storage_schemes = ("azureml",)
    max_runtime_seconds = MAX_RUNTIME_SECONDS

    @classproperty
    def poll_interval_bounds(cls) -> tuple[int, int]:
        return poll_bounds(cls.name)  # TRAIN_AZURE_ML_POLL_SECONDS

    # --- configuration and the confused-deputy guard --------------------------------------------------
    @classmethod
    def validate_config(cls, config: dict, *, previous: dict) -> dict:
        return azure_config.validate_config(config, previous=previous)

    @classmethod
    def verify_config(cls, config: dict, *, account_id: str) -> None:
        """The workspace must exist, be reachable as Train's app in the configured tenant, lie in the
        configured region and carry `train-account=<this account>` (decision 0077)."""
        try:
            workspace_record(azure_client(config), config, account_id)
        except BackendError as exc:
            field = "tenant_id" if "Entra ID" in exc.message else "workspace"
            raise SpecError({field: exc.message}) from exc

    @classmethod
    def remote_name(cls, job_id: str) -> str:
        name = re.sub(r"[^a-z0-9_-]+", "-", super().remote_name(job_id).lower()).strip("-_")[:255]
        if not NAME_RE.match(name):
            raise SpecError({"id": f"Cannot derive an Azure ML job name from {job_id!r}."})
        return name

    # --- validation and translation -------------------------------------------------------------------
    def spec_errors(self, spec: JobSpec) -> dict[str, str]:
        return spec_errors(spec, self.config)

    def build_request(self, spec: JobSpec, name: str) -> dict:
        return build_request(spec, name, self.config)

    @property
    def client(self) -> AzureClient:
        return azure_client(self.config)

    @property
    def workspace(self) -> api.Workspace:
        return workspace_of(self.config)

    # --- submission -------------------------------------------------------------------------------------
    def pin_image(self, image: str) -> str:
        from backends.azure.images import pinned_image

        return pinned_image(self.config, image)

    def submit(self, spec: JobSpec, name: str) -> RemoteRef:
        workspace_record(self.client, self.config, spec.account_id)  # the guard, before every submit
        request = self.build_request(spec, name)
        environment = request["environment"]
        try:  # content-addressed: re-sending the same version is harmless, so it is retried freely
            self.client.arm("PUT", environment["path"], api_version=api.ENVIRONMENTS_API_VERSION,
                            body=environment["body"])
        except (AzureError, requests.RequestException) as exc:
            raise backend_error(exc, "create the job's environment version") from exc
        refused = None
        for attempt in range(CREATE_TRIES):
            if attempt:
                wait = (refused.retry_after if refused else None) or CREATE_BACKOFF_SECONDS * 2 ** (attempt - 1)
                time.sleep(min(wait, 10.0))
            refused = None
            try:
                answer = self.client.arm("PUT", request["job"]["path"], api_version=api.JOBS_API_VERSION,
                                         body=request["job"]["body"], attempts=1)
                return self._if_ours(answer.json(), spec.job_id)
            except AzureError as exc:
                if exc.name_taken:
                    return self._adopt(name, spec.job_id)
                if exc.status == 429:
                    refused = backend_error(exc, "create the job")
                    continue  # refused, not applied: nothing to look up
                if exc.status < 500:
                    raise backend_error(exc, "create the job") from exc
                log.warning("create %s: %s; looking it up before another try", name, exc)
            except (requests.RequestException, ValueError) as exc:
                log.warning("create %s: %s; looking it up before another try", name, exc)
            # The PUT may have been applied although its answer was lost: look before retrying.
            if self._get(name) is not None:
                return self._adopt(name, spec.job_id)
        if refused is not None:
            raise refused
        raise BackendError(f"Azure ML did not confirm the creation of {name} after {CREATE_TRIES} tries.")

    def _get(self, name: str, *, attempts: int | None = None) -> dict | None:
        kwargs = {"attempts": attempts} if attempts else {}
        try:
            return self.client.arm("GET", self.workspace.job_path(name), api_version=api.JOBS_API_VERSION,
                                   **kwargs).json()
        except AzureError as exc:
            if exc.status == 404:
                return None
            raise backend_error(exc, f"read the job {name}") from exc
        except (requests.RequestException, ValueError) as exc:
            raise backend_error(exc, f"read the job {name}") from exc

    def _adopt(self, name: str, job_id: str) -> RemoteRef:
        record = self._get(name)
        if record is None:
            raise BackendError(f"Azure ML reported the job {name} as existing but cannot read it yet.")
        return self._if_ours(record, job_id)

    def _if_ours(self, record: dict, job_id: str) -> RemoteRef:
        """A ref to `record` if Train created it for `job_id` (its immutable `train_job_id` property,
        set in the same PUT that created it, so never missing on a job of Train's)."""
        name = record.get("name", "")
        owner = (record.get("properties", {}).get("properties") or {}).get(JOB_ID_PROPERTY, "")
        if owner == job_id:
            return RemoteRef(name=name, remote_id=record.get("id", ""))
        raise BackendError(f"An Azure ML job named {name} already exists and was not created by Train for this job "
                           f"({owner or 'no Train property'}).", permanent=True)

    def find(self, name: str, *, job_id: str) -> RemoteRef | None:
        record = self._get(name)
        return None if record is None else self._if_ours(record, job_id)

    # --- tracking ----------------------------------------------------------------------------------------
    def poll(self, refs: list[RemoteRef], *, since=None,
             deadline: float | None = None) -> dict[RemoteRef, RemoteStatus]:
        """One GET per job, paced within ARM's read budget (listing a workspace's jobs is slow on large
        workspaces, and its filters cannot say "changed since"). A job seen finished costs one more
        read, of its run-history details, for the failure text and its times."""
        found = {}
        for ref in refs:
            if deadline is not None and time.monotonic() >= deadline:
                break  # out of budget: the rest are polled in the next cycle
            try:
                record = self._get(ref.name, attempts=POLL_ATTEMPTS)
            except BackendError as exc:
                log.warning("poll %s: %s", ref.name, exc)  # this job backs off; the others go on
                if exc.retry_after is not None:
                    break  # ARM throttles the whole subscription: the rest back off too, unread
                continue
            if record is None:
                continue
            details = None
            if native_status(record) in TERMINAL:
                try:
                    details = self.run_details(ref.name)
                except BackendError as exc:
                    log.warning("run history of %s: %s", ref.name, exc)  # the status stands without it
            found[ref] = observation(record, details)
        return found

    def run_details(self, name: str) -> dict:
        base = self._run_history_base()
        try:
            return self.client.data_plane(base, self.workspace.run_details_path(name), attempts=POLL_ATTEMPTS).json()
        except (AzureError, requests.RequestException, ValueError) as exc:
            raise backend_error(exc, f"read the run history of {name}") from exc

    def _run_history_base(self) -> str:
        key = (self.client.target.arm_endpoint, self.workspace.arm_id)
        if (cached := cached_api_host(key)) is not None:
            return cached
        record = workspace_record(self.client, self.config, self.account_id or None)
        discovery = record.get("properties", {}).get("discoveryUrl", "")
        try:
            base = self.client.data_plane(*_split_url(discovery), token=False).json()["api"].rstrip("/")
        except (AzureError, requests.RequestException, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise backend_error(exc, "discover the workspace's run-history endpoint") from exc
        remember_api_host(key, base)
        return base

    # --- cancel, logs, console ---------------------------------------------------------------------------
    def cancel(self, ref: RemoteRef) -> None:
        try:
            answer = self.client.arm("POST", self.workspace.job_path(ref.name) + "/cancel",
                                     api_version=api.JOBS_API_VERSION)
        except AzureError as exc:
            record = self._get(ref.name) if exc.status < 500 else None
            if record is not None and native_status(record) in TERMINAL | {"CancelRequested"}:
                return  # stopping a finished job is not an error for Train
            raise backend_error(exc, f"cancel {ref.name}") from exc
        except requests.RequestException as exc:
            raise backend_error(exc, f"cancel {ref.name}") from exc
        if answer.status_code == 202:
            self._follow_operation(answer, ref.name)

    def _follow_operation(self, answer, name: str) -> None:
        """Follow the cancel's long-running operation briefly: a Failed operation is an error; one
        still running after CANCEL_FOLLOW_SECONDS is left to polling, which sees Canceled."""
        url = answer.headers.get("Azure-AsyncOperation") or answer.headers.get("Location")
        if not url:
            return
        base, path = _split_url(url)
        if base != self.client.target.arm_endpoint:
            log.warning("cancel %s: operation URL on another host (%s); not followed", name, base)
            return
        give_up = time.monotonic() + CANCEL_FOLLOW_SECONDS
        while time.monotonic() < give_up:
            try:
                status = self.client.call("GET", base + path, attempts=POLL_ATTEMPTS)
            except (AzureError, requests.RequestException) as exc:
                log.warning("cancel %s: operation status: %s", name, exc)
                return
            if status.status_code == 200:
                body = status.json() if status.content else {}
                state = body.get("status", "Succeeded") if isinstance(body, dict) else "Succeeded"
                if state in ("Failed", "Canceled"):
                    raise BackendError(f"Azure ML could not cancel {name}: "
                                       f"{(body.get('error') or {}).get('message', state)}")
                if state not in ("InProgress", "Running", "Accepted"):
                    return
            time.sleep(CANCEL_FOLLOW_INTERVAL_SECONDS)

    def logs(self, ref: RemoteRef, *, tail: int = 100) -> list[str]:
        return log_tail(self.run_details(ref.name), tail)

    def console_url(self, ref: RemoteRef) -> str:
        return self.workspace.console_url(ref.name, self.config.get("tenant_id", ""))

    # --- images ----------------------------------------------------------------------------------------
    def mirror_target(self, repository: str):
        """The workspace's ACR (`acr`), pushed to as Train's app (AcrPush on the registry)."""
        from backends.azure.images import acr_mirror_target

        return acr_mirror_target(self.config, repository)


def _split_url(url: str) -> tuple[str, str]:
    """("scheme://host[:port]", "/path?query") of an absolute URL ("", url) if it is not one."""
    scheme, sep, rest = str(url).partition("://")
    if not sep:
        raise BackendError(f"Azure answered with a URL Train cannot follow: {url!r}")
    slash = rest.find("/")
    return (f"{scheme}://{rest}", "") if slash < 0 else (f"{scheme}://{rest[:slash]}", rest[slash:])


def workspace_record(client: AzureClient, config: dict, account_id: str | None) -> dict:
    """The workspace's ARM record, if the account may use it: in the configured region and tagged
    `train-account=<account_id>` (None: skip the tag check, for a caller that already passed it)."""
    workspace = workspace_of(config)
    try:
        record = client.arm("GET", workspace.arm_id, api_version=api.WORKSPACES_API_VERSION).json()
    except AzureError as exc:
        if exc.status in (403, 404):
            raise BackendError(f"Train's app cannot read the workspace {workspace.name} in resource group "
                               f"{workspace.resource_group} ({exc.code}): assign it AzureML Data Scientist on the "
                               f"workspace.", permanent=True) from exc
        raise backend_error(exc, f"read the workspace {workspace.name}") from exc
    except (requests.RequestException, ValueError) as exc:
        raise backend_error(exc, f"read the workspace {workspace.name}") from exc
    location = str(record.get("location", "")).replace(" ", "").lower()
    if location and location != config["region"]:
        raise BackendError(f"The workspace {workspace.name} is in {location}, not {config['region']}.", permanent=True)
    tag = (record.get("tags") or {}).get(ACCOUNT_TAG)
    if account_id is not None and tag != account_id:
        raise BackendError(f"The workspace {workspace.name} must carry the tag {ACCOUNT_TAG}={account_id} before "
                           f"Train acts on it for this account (it carries {ACCOUNT_TAG}={tag or 'nothing'}).",
                           permanent=True)
    return record
