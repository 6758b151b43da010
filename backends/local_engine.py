"""Which container engine runs `local` jobs, and how Train configures it.

TRAIN_LOCAL_RUNTIME picks podman, docker or none ("process"); "auto" takes the first engine that
answers its health check. podman runs with a configuration Train writes under its data directory
(containers.conf, storage.conf, registries.conf, passed through CONTAINERS_CONF and friends), so the
host user's own podman settings and images are never used or touched: the `runc` runtime (crun fails
on hosts with a hybrid cgroup layout) and explicit ulimits no higher than Train's own hard limits
(podman's defaults ask for more than an unprivileged-capability host grants, and the job then fails
to start). docker is driven through its daemon as it is configured; Train gives it a per-job client
configuration directory for the pull credential only (docs/decisions/0080-local-jobs-in-containers.md).
"""

import json
import logging
import os
import resource
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

HEALTH_TIMEOUT_SECONDS = 20
HEALTH_CACHE_SECONDS = 60
CDI_DIRS = ("/etc/cdi", "/var/run/cdi")
GPU_DEVICE = "nvidia.com/gpu=all"


@dataclass(frozen=True)
class Engine:
    """The result of the health check: what runs local jobs on this host, and why."""

    runtime: str  # "podman", "docker" or "process"
    ok: bool  # the chosen runtime can run jobs
    version: str = ""
    binary: str = ""
    gpus: bool = False  # CDI describes nvidia.com/gpu
    message: str = ""

    @property
    def container(self) -> bool:
        return self.runtime in ("podman", "docker")

    def as_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.container and self.ok:
            gpus = "; GPUs via CDI" if self.gpus else ""
            return f"local backend: jobs run in containers with {self.runtime} {self.version}{gpus}"
        return f"local backend: {self.message}"


def containers_dir() -> Path:
    return Path(settings.TRAIN_LOCAL_CONTAINERS_DIR)


# The OCI runtime is started by conmon with a hard process limit of 32768 on Debian's podman, whatever
# Train's own limit: asking for more fails with "error setting rlimit type 6".
NPROC_CEILING = 32768


def _ulimits() -> list[str]:
    """nofile and nproc no higher than what the runtime holds, so it can set them without privileges
    (a host that strips CAP_SYS_RESOURCE refuses any raise)."""
    limits = []
    for name, which, ceiling in (("nofile", resource.RLIMIT_NOFILE, None),
                                 ("nproc", resource.RLIMIT_NPROC, NPROC_CEILING)):
        hard = resource.getrlimit(which)[1]
        value = ceiling if hard == resource.RLIM_INFINITY else min(hard, ceiling or hard)
        if value is not None:
            limits.append(f"{name}={value}:{value}")
    return limits


def podman_environment() -> dict[str, str]:
    """The environment variables that point podman at Train's configuration (written on first use)."""
    root = containers_dir()
    files = {
        "containers.conf": "\n".join([
            "# Written by Train for local jobs; edits are overwritten.",
            "[containers]",
            f"default_ulimits = {json.dumps(_ulimits())}",
            'log_driver = "k8s-file"',
            "[engine]",
            'runtime = "runc"',
            f'tmp_dir = "{root / "tmp"}"',
            'events_logger = "file"',
            f'events_logfile_path = "{root / "events.log"}"',
            "",
        ]),
        "storage.conf": "\n".join([
            "[storage]",
            'driver = "overlay"',
            f'graphroot = "{root / "storage"}"',
            f'runroot = "{root / "run"}"',
            "",
        ]),
        # No search registries and no mirrors: Train names every image fully qualified.
        "registries.conf": 'unqualified-search-registries = []\nshort-name-mode = "disabled"\n',
    }
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    for name, text in files.items():
        path = root / name
        if not path.exists() or path.read_text() != text:
            tmp = root / f".{name}.tmp"
            tmp.write_text(text)
            tmp.replace(path)
    return {"CONTAINERS_CONF": str(root / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(root / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(root / "registries.conf")}


# How Train's own environment points the docker client at its daemon, passed on to every docker call.
DOCKER_CLIENT_VARIABLES = ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_CERT_PATH", "DOCKER_TLS_VERIFY")


def engine_environment(runtime: str) -> dict[str, str]:
    """The variables every call of `runtime` runs with (the supervisor passes only these and PATH)."""
    if runtime == "podman":
        return podman_environment()
    return {name: os.environ[name] for name in DOCKER_CLIENT_VARIABLES if name in os.environ}


def cdi_has_gpus() -> bool:
    """Whether a CDI specification on this host describes NVIDIA GPUs (nvidia-ctk cdi generate)."""
    for directory in CDI_DIRS:
        for path in sorted(Path(directory).glob("*")) if Path(directory).is_dir() else ():
            try:
                if path.suffix in (".yaml", ".yml", ".json") and "nvidia.com/gpu" in path.read_text():
                    return True
            except OSError:
                continue
    return False


def _check(runtime: str) -> Engine:
    binary = shutil.which(runtime)
    if binary is None:
        return Engine(runtime, ok=False, message=f"{runtime} is not installed")
    if runtime == "podman" and shutil.which("runc") is None:
        return Engine(runtime, ok=False, binary=binary, message="podman needs runc on this host; install runc")
    fmt = "{{.Version.Version}}" if runtime == "podman" else "{{.ServerVersion}}"
    try:
        done = subprocess.run([binary, "info", "--format", fmt], capture_output=True, text=True,
                              timeout=HEALTH_TIMEOUT_SECONDS, env=_env_with(engine_environment(runtime)))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return Engine(runtime, ok=False, binary=binary, message=f"{runtime} info failed: {exc}")
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no output"])[-1][:300]
        return Engine(runtime, ok=False, binary=binary, message=f"{runtime} info failed: {reason}")
    return Engine(runtime, ok=True, version=done.stdout.strip()[:40], binary=binary, gpus=cdi_has_gpus())


def _env_with(extra: dict[str, str]) -> dict[str, str]:
    return {**os.environ, **extra}


def _detect(wanted: str) -> Engine:
    if wanted == "process":
        return Engine("process", ok=True, message="TRAIN_LOCAL_RUNTIME=process: jobs run as host processes; "
                                                  "their images are not run")
    if wanted in ("podman", "docker"):
        return _check(wanted)
    reasons = []
    for runtime in ("podman", "docker"):
        engine = _check(runtime)
        if engine.ok:
            return engine
        reasons.append(engine.message)
    return Engine("process", ok=True, message="no container engine (" + "; ".join(reasons) + "): jobs run as "
                                              "host processes; their images are not run")


_cache: dict[str, tuple[float, Engine]] = {}


def local_engine(*, fresh: bool = False) -> Engine:
    """The engine for TRAIN_LOCAL_RUNTIME, checked at most once a minute per process."""
    wanted = settings.TRAIN_LOCAL_RUNTIME
    cached = _cache.get(wanted)
    if not fresh and cached and time.monotonic() - cached[0] < HEALTH_CACHE_SECONDS:
        return cached[1]
    engine = _detect(wanted)
    _cache[wanted] = (time.monotonic(), engine)
    return engine


def log_local_engine() -> None:
    """The startup line of the worker and the gateway: which engine local jobs use."""
    if settings.TRAIN_LOCAL_BACKEND:
        engine = local_engine(fresh=True)
        (log.info if engine.ok else log.warning)(engine.describe())
