"""The `local` backend: runs the job on the Train host, in a container of its pinned image when a
container engine is there (podman or docker, backends/local_engine.py), else as a host process.

For development, demos and single-tenant hosts. Each job gets a run directory named after its remote
name; a detached supervisor (`backends.local_runner`) runs the container or the process there, so the
job goes through the same submit / poll / cancel path as a cloud job and survives a worker restart.
When Train runs as root, a process runs as a user of its own, away from Train's files, network and
other jobs (backends/local_isolation.py); a container sees only its image and its mounts
(docs/backends/local.md).
"""

import base64
import dataclasses
import fcntl
import json
import os
import re
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.conf import settings

from backends.base import Backend, BackendError, JobSpec, RemoteRef, RemoteStatus, SpecError
from backends.local_engine import GPU_DEVICE, engine_environment, local_engine
from backends.local_images import prune_lock_path
from backends.local_isolation import can_isolate, secure_data_dir, unreachable_parent
from backends.local_launcher import Launcher
from registry.hosts import LOOPBACK_NAMES, is_train_registry
from registry.reference import InvalidReference, parse_reference
from registry.tokens import pull_token_issue

# The job sees a small, explicit environment: the server's own (database URL, cloud credentials) must
# never leak into user code.
BASE_ENV = {"LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1"}
LOG_TAIL_READ_BYTES = 64 * 1024
# Where a container sees its i-th mount (STORAGE_MOUNT_<i>_PATH).
CONTAINER_MOUNT_PATH = "/mnt/train/mount{index}"
# `machine_type` of a local job: CPUs and, optionally, memory for its container ("2cpu", "0.5cpu-512mb").
MACHINE_TYPE_RE = re.compile(r"\A(?P<cpus>[0-9]{1,3}(?:\.[0-9]{1,2})?)cpu(?:-(?P<memory>[0-9]{1,7})(?P<unit>mb|gb))?\Z")
MIN_MEMORY_MB = 16
# What a job that ran as a host process shows in its sub_status: its image was recorded, not run.
PROCESS_NOTE = " (host process; image not run)"
# Supervisors are forks of a warm launcher, one per process that starts them (backends/local_launcher.py).
LAUNCHER = Launcher()


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _parse_time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def _memory_mb(match: re.Match) -> int:
    return int(match["memory"]) * (1024 if match["unit"] == "gb" else 1)


def _write_private(path: Path, text: str) -> None:
    """Write `text` to `path` atomically, readable by Train only (it may hold secrets)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def local_mount_path(source: str) -> Path:
    """The host path of a file:// mount source (validated by LocalBackend.validate)."""
    return Path(unquote(urlsplit(source).path))


class LocalBackend(Backend):
    name = "local"
    storage_schemes = ("file",)
    requires_config = False
    # Local status changes should show within seconds, and polling a directory costs nothing.
    poll_interval_bounds = (2, 10)
    poll_claim_seconds = 5

    @property
    def run_root(self) -> Path:
        return Path(settings.TRAIN_LOCAL_RUN_DIR)

    def run_dir(self, name: str) -> Path:
        return self.run_root / name

    @classmethod
    def health(cls) -> dict:
        engine = local_engine()
        return {"runtime": engine.runtime, "ok": engine.ok, "version": engine.version, "gpus": engine.gpus,
                "runs_images": engine.container and engine.ok, "message": engine.describe()}

    # --- validation -------------------------------------------------------------------------------
    def validate(self, spec: JobSpec) -> None:
        super().validate(spec)
        errors = {}
        roots = settings.TRAIN_LOCAL_MOUNT_ROOTS
        for index, mount in enumerate(spec.storage_mounts):
            parts = urlsplit(mount.source)
            raw_path = unquote(parts.path)
            path = Path(raw_path)
            field = f"storage_mounts[{index}].source"
            if parts.netloc not in ("", "localhost") or not path.is_absolute():
                errors[field] = ["Use an absolute file:///path on the Train host."]
            elif ".." in path.parts or os.path.normpath(raw_path) != raw_path.rstrip("/") or "//" in raw_path:
                errors[field] = ["The path must be normalised (no '..', '.' or repeated '/')."]
            elif not any(path == root or root in path.parents for root in roots):
                allowed = ", ".join(str(r) for r in roots)
                errors[field] = [f"The local backend mounts only paths under: {allowed}."]
            elif not path.exists():
                errors[field] = [f"{path} does not exist on the Train host."]
            elif "," in raw_path or ":" in raw_path:
                errors[field] = ["A local mount path may not contain ',' or ':'."]
        errors.update(self._validate_container(spec))
        if errors:
            raise SpecError(errors)

    def _validate_container(self, spec: JobSpec) -> dict[str, list[str]]:
        errors: dict[str, list[str]] = {}
        engine = local_engine()
        resources = spec.resources
        if resources.get("instance_count", 1) > 1:
            errors["resources.instance_count"] = ["The local backend runs one instance, on this host."]
        if resources.get("accelerator_count"):
            if not (engine.container and engine.ok and engine.gpus):
                errors["resources.accelerator_count"] = [
                    "This Train host has no GPUs for local jobs (a container engine with a CDI specification "
                    "of nvidia.com/gpu is needed)."]
        if machine := resources.get("machine_type"):
            match = MACHINE_TYPE_RE.match(machine)
            if match is None:
                errors["resources.machine_type"] = [
                    "For the local backend: '<cpus>cpu' or '<cpus>cpu-<memory>mb|gb', e.g. '2cpu-4gb'."]
            elif not engine.container:
                errors["resources.machine_type"] = ["CPU and memory limits need a container engine on this host."]
            elif not 0 < float(match["cpus"]) <= (os.cpu_count() or 1):
                errors["resources.machine_type"] = [f"This host has {os.cpu_count()} CPUs."]
            elif match["memory"] and _memory_mb(match) < MIN_MEMORY_MB:
                errors["resources.machine_type"] = [f"At least {MIN_MEMORY_MB}mb of memory."]
        if engine.container:
            try:
                ref = parse_reference(spec.image)
            except InvalidReference as exc:
                errors["image"] = [str(exc)]
            else:
                train_image = bool(ref.domain) and is_train_registry(ref.domain)
                if not train_image and not settings.TRAIN_LOCAL_ALLOW_EXTERNAL_IMAGES:
                    errors["image"] = ["This deployment runs only images from Train's registry "
                                       "(TRAIN_LOCAL_ALLOW_EXTERNAL_IMAGES=0)."]
            for key, value in spec.env.items():
                if "\n" in value or "\r" in value or "\x00" in value:
                    errors[f"env.{key}"] = ["A container's environment value may not contain line breaks."]
        return errors

    # --- translation ------------------------------------------------------------------------------
    def build_request(self, spec: JobSpec, name: str) -> dict:
        engine = local_engine()
        if engine.container and engine.ok:
            return self._container_request(spec, name, engine)
        return self._process_request(spec, name)

    def _process_request(self, spec: JobSpec, name: str) -> dict:
        run = self.run_dir(name)
        env = {"PATH": settings.TRAIN_LOCAL_PATH, "HOME": str(run / "work"), **BASE_ENV, **spec.env,
               "TRAIN_JOB_ID": spec.job_id}
        for index, mount in enumerate(spec.storage_mounts):
            env[f"STORAGE_MOUNT_{index}_PATH"] = str(local_mount_path(mount.source))
        return {
            "argv": [*spec.command, *spec.args],
            "env": env,
            "cwd": str(run / "work"),
            "max_runtime_seconds": spec.max_runtime_seconds,
            "kill_grace_seconds": settings.TRAIN_LOCAL_KILL_GRACE_SECONDS,
            "image": spec.image,
            "isolation": self._isolation(),
            # Made read-only for the job when it is isolated (backends/local_isolation.py).
            "mounts": [{"path": str(local_mount_path(mount.source)), "read_only": mount.mode != "rw"}
                       for mount in spec.storage_mounts],
        }

    def _container_request(self, spec: JobSpec, name: str, engine) -> dict:
        image, repository, tls_verify = self.image_reference(spec)
        env = {**spec.env, "TRAIN_JOB_ID": spec.job_id}
        args = ["--pull", "never", "--network", settings.TRAIN_LOCAL_JOB_NETWORK,
                "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--stop-signal", "TERM",
                "--label", f"train.job-id={spec.job_id}", "--entrypoint", spec.command[0]]
        for index, mount in enumerate(spec.storage_mounts):
            target = CONTAINER_MOUNT_PATH.format(index=index)
            mode = "ro" if mount.mode == "ro" else "rw"
            args += ["--volume", f"{local_mount_path(mount.source)}:{target}:{mode}"]
            env[f"STORAGE_MOUNT_{index}_PATH"] = target
        if match := MACHINE_TYPE_RE.match(spec.resources.get("machine_type") or ""):
            args += ["--cpus", match["cpus"]]
            if match["memory"]:
                args += ["--memory", f"{_memory_mb(match)}m"]
        if spec.resources.get("accelerator_count"):
            args += ["--device", GPU_DEVICE]
        return {
            "argv": [*spec.command, *spec.args],
            "env": env,
            "max_runtime_seconds": spec.max_runtime_seconds,
            "kill_grace_seconds": settings.TRAIN_LOCAL_KILL_GRACE_SECONDS,
            "image": spec.image,
            "isolation": self._isolation(),
            "container": {
                "engine": engine.runtime, "binary": engine.binary, "engine_env": engine_environment(engine.runtime),
                "name": name, "image": image, "repository": repository, "account_id": spec.account_id,
                "tls_verify": tls_verify,
                "create_args": args, "args": [*spec.command[1:], *spec.args],
                "prune_lock": str(prune_lock_path()),
            },
        }

    @staticmethod
    def image_reference(spec: JobSpec) -> tuple[str, str, bool]:
        """(what the engine pulls, Train's repository or "", whether TLS is verified). An image of
        Train's registry is pulled by its pinned digest, from TRAIN_REGISTRY_HOST: never by tag."""
        ref = parse_reference(spec.image)
        if ref.domain and is_train_registry(ref.domain):
            host = settings.TRAIN_REGISTRY_HOST
            loopback = host.rsplit(":", 1)[0].lower() in LOOPBACK_NAMES or host.lower().startswith("[::1]")
            return f"{host}/{ref.path}@{spec.image_digest}", ref.path, not loopback
        domain = ref.domain or "docker.io"
        path = ref.path if ref.domain or "/" in ref.path else f"library/{ref.path}"
        image = f"{domain}/{path}"
        if ref.digest:
            return f"{image}@{ref.digest}", "", True
        return f"{image}:{ref.tag or 'latest'}", "", True

    def _isolation(self) -> dict | None:
        """How the supervisor keeps the job away from Train, or None when Train cannot (not root)."""
        if not can_isolate():
            return None
        return {"uid_base": settings.TRAIN_LOCAL_JOB_UID_BASE, "uid_count": settings.TRAIN_LOCAL_JOB_UID_COUNT,
                "uid_dir": str(self.run_root / ".uids"), "network": settings.TRAIN_LOCAL_JOB_NETWORK}

    def _secure(self) -> None:
        """Train's files private, and the run root reachable by job users (never listable)."""
        isolating = can_isolate()
        self.run_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        database = settings.DATABASES["default"]
        sqlite = [Path(f"{database['NAME']}{suffix}") for suffix in ("", "-wal", "-shm")
                  if database["ENGINE"].endswith("sqlite3")]
        data_dir = Path(settings.TRAIN_DATA_DIR)
        secure_data_dir(data_dir, reachable=[self.run_root, *settings.TRAIN_LOCAL_MOUNT_ROOTS],
                        private=[Path(settings.TRAIN_REGISTRY_SIGNING_KEY), Path(settings.TRAIN_REGISTRY_DATA_DIR),
                                 *sqlite], isolating=isolating)
        if isolating:
            self.run_root.chmod(0o711)
            for root in settings.TRAIN_LOCAL_MOUNT_ROOTS:
                if root.parent == data_dir and root.is_dir():
                    root.chmod(root.stat().st_mode | 0o055)  # created by Train, for jobs to read
            if (blocked := unreachable_parent(self.run_root)) is not None and blocked != data_dir:
                raise BackendError(f"Local job users cannot pass through {blocked}: allow it (chmod o+x) or "
                                   "move TRAIN_DATA_DIR.", permanent=True)

    # --- lifecycle --------------------------------------------------------------------------------
    def submit(self, spec: JobSpec, name: str) -> RemoteRef:
        run = self.run_dir(name)
        engine = local_engine()
        if engine.container and not engine.ok:
            raise BackendError(f"TRAIN_LOCAL_RUNTIME={engine.runtime}, but {engine.message}.", permanent=True)
        try:
            self._secure()
            run.mkdir(mode=0o700, exist_ok=True)
            (run / "work").mkdir(mode=0o700, exist_ok=True)
            if not (run / "spec.json").exists():
                tmp = run / f".spec.{os.getpid()}.tmp"
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # the env may hold secrets
                request = self.build_request(spec, name)
                with os.fdopen(fd, "w") as fh:
                    fh.write(json.dumps(request))
                if request.get("container"):
                    _write_private(run / "container.env",
                                   "".join(f"{key}={value}\n" for key, value in request["env"].items()))
                os.replace(tmp, run / "spec.json")
            self._ensure_supervisor(run)
        except OSError as exc:
            raise BackendError(f"Could not prepare the local run directory: {exc}") from exc
        return RemoteRef(name=name, remote_id=name)

    def _ensure_supervisor(self, run: Path) -> None:
        """Start a supervisor unless the job already started. A duplicate supervisor exits at once
        (it cannot take run.lock, or finds `started`), so calling this twice is harmless."""
        if (run / "started").exists() or (run / "result.json").exists():
            return
        self._start_supervisor(run)

    def _start_supervisor(self, run: Path) -> None:
        spec = _read_json(run / "spec.json") or {}
        needs_pull = not (run / "started").exists() and not (run / "result.json").exists()
        if (container := spec.get("container")) and container.get("repository") and needs_pull:
            self._write_pull_credential(run, container)
        LAUNCHER.start_supervisor(run)

    def _write_pull_credential(self, run: Path, container: dict) -> None:
        """A fresh one-repository pull token, where the engine reads it (never on a command line)."""
        account_id, repository = container["account_id"], container["repository"]
        token, _, _ = pull_token_issue(account_id=account_id, repository=repository)
        user = base64.b64encode(f"{account_id}:{token}".encode()).decode()
        host = container["image"].split("/", 1)[0]
        (run / "registry-auth").mkdir(mode=0o700, exist_ok=True)
        _write_private(run / "registry-auth" / "config.json", json.dumps({"auths": {host: {"auth": user}}}))

    def find(self, name: str, *, job_id: str) -> RemoteRef | None:
        return RemoteRef(name=name, remote_id=name) if (self.run_dir(name) / "spec.json").exists() else None

    def poll(self, refs: list[RemoteRef], *, since=None, deadline=None) -> dict[RemoteRef, RemoteStatus]:
        found = {}
        for ref in refs:
            if deadline is not None and time.monotonic() >= deadline:
                break  # out of budget: the rest are polled in the next cycle
            found[ref] = self._observe(self.run_dir(ref.name))
        return found

    def _observe(self, run: Path) -> RemoteStatus:
        if not run.is_dir():
            return RemoteStatus(status="FAILED", remote_status="lost",
                                message=f"The local run directory {run.name} no longer exists.")
        in_container = bool((_read_json(run / "spec.json") or {}).get("container"))
        seen = self._observe_run(run, in_container)
        if in_container:
            return seen
        return dataclasses.replace(seen, remote_status=seen.remote_status + PROCESS_NOTE)

    def _observe_run(self, run: Path, in_container: bool) -> RemoteStatus:
        result = _read_json(run / "result.json")
        started = _read_json(run / "started") or {}
        started_at = _parse_time(started.get("at"))
        if result is not None:
            if in_container and not (run / "removed").exists() and not self._supervisor_alive(run):
                self._start_supervisor(run)  # its supervisor died before removing the container: remove it
            return self._from_result(result, started_at)
        if not started:
            self._ensure_supervisor(run)  # heals a supervisor that died before it could start the job
            return RemoteStatus(status="PENDING", remote_status="pulling" if in_container else "queued")
        if self._supervisor_alive(run):
            return RemoteStatus(status="IN_PROGRESS", remote_status="running", started_at=started_at)
        # The supervisor writes result.json and then exits: it may have done both since the first read.
        result = _read_json(run / "result.json")
        if result is not None:
            return self._from_result(result, started_at)
        if in_container:
            # The container outlives its supervisor: a new one adopts it (or reports it gone).
            self._start_supervisor(run)
            return RemoteStatus(status="IN_PROGRESS", remote_status="running", started_at=started_at)
        return RemoteStatus(
            status="FAILED", remote_status="lost", started_at=started_at,
            message="The local runner stopped without recording an outcome (was the host restarted?).",
        )

    @staticmethod
    def _from_result(result: dict, started_at) -> RemoteStatus:
        finished_at = _parse_time(result.get("finished_at"))
        outcome, code = result["outcome"], result.get("exit_code")
        if outcome == "exited" and code == 0:
            return RemoteStatus("COMPLETED", "exited", "", started_at, finished_at)
        if outcome == "exited" and result.get("oom_killed"):
            return RemoteStatus("FAILED", "exited", "The container ran out of memory (its machine_type limit) and "
                                "was killed.", started_at, finished_at)
        if outcome == "exited":
            reason = f"killed by signal {-code}" if code < 0 else f"exited with code {code}"
            return RemoteStatus("FAILED", "exited", f"The process {reason}.", started_at, finished_at)
        if outcome == "canceled":
            return RemoteStatus("CANCELED", "canceled", "Stopped on request.", started_at, finished_at)
        if outcome == "expired":
            return RemoteStatus("EXPIRED", "expired", "Stopped after max_runtime_seconds.", started_at, finished_at)
        return RemoteStatus("FAILED", outcome, result.get("message", ""), started_at, finished_at)

    @staticmethod
    def _supervisor_alive(run: Path) -> bool:
        fd = os.open(run / "run.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def cancel(self, ref: RemoteRef) -> None:
        run = self.run_dir(ref.name)
        if not run.exists():
            raise BackendError(f"No local run {ref.name}.", permanent=True)
        (run / "cancel").touch()
        if not self._supervisor_alive(run) and not (run / "result.json").exists():
            self._start_supervisor(run)  # records the cancellation (or stops an adopted container)

    def logs(self, ref: RemoteRef, *, tail: int = 100) -> list[str]:
        path = self.run_dir(ref.name) / "output.log"
        try:
            with open(path, "rb") as fh:
                size = fh.seek(0, os.SEEK_END)
                start = max(0, size - LOG_TAIL_READ_BYTES * max(1, tail // 100))
                fh.seek(start)
                data = fh.read()
        except FileNotFoundError:
            return []
        lines = data.decode("utf-8", errors="replace").splitlines()
        if start > 0:
            lines = lines[1:]  # the first line was cut by the seek
        return lines[-tail:]
