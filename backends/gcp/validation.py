"""What Vertex AI can run: the checks behind `VertexBackend.validate`, each error keyed by the field path
a user fixes. Limits come from the Vertex AI v1 API (CustomJob, WorkerPoolSpec, Scheduling)."""

from __future__ import annotations

import re

from backends.base import JobSpec
from backends.gcp.config import gs_uri_error
from registry.hosts import is_train_registry
from registry.reference import InvalidReference, parse_reference

# MachineSpec.acceleratorType, as the v1 API's enum names them (TPUs go with their ct*/v5 machine types).
ACCELERATOR_TYPES = (
    "NVIDIA_TESLA_K80", "NVIDIA_TESLA_P100", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P4", "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_A100", "NVIDIA_A100_80GB", "NVIDIA_L4", "NVIDIA_H100_80GB", "NVIDIA_H100_MEGA_80GB",
    "NVIDIA_H200_141GB", "NVIDIA_B200", "NVIDIA_GB200", "NVIDIA_RTX_PRO_6000",
    "TPU_V2", "TPU_V3", "TPU_V4_POD", "TPU_V5_LITEPOD",
)
# Compute Engine machine types: <family>-<kind>[-<size>] ("n1-standard-8", "a2-highgpu-1g",
# "g2-standard-12", "ct5lp-hightpu-4t"); checked by shape so a new type needs no release.
MACHINE_TYPE_RE = re.compile(r"\A[a-z][a-z0-9]*(?:-[a-z0-9]+){1,3}\Z")
# Images Vertex pulls with the project's Vertex AI service agent: Artifact Registry and Container Registry.
ARTIFACT_REGISTRY_HOST_RE = re.compile(r"\A[a-z0-9-]+-docker\.pkg\.dev\Z")
CONTAINER_REGISTRY_HOSTS = frozenset({"gcr.io", "us.gcr.io", "eu.gcr.io", "asia.gcr.io"})
IMAGE_URI_MAX_LENGTH = 1024
# ContainerSpec.env holds at most 100 variables; Train adds one per mount and TRAIN_JOB_ID.
MAX_ENV = 100
# Vertex sets these in the container (AIP_MODEL_DIR, CLOUD_ML_JOB_ID, ...); a user value would be
# overwritten or would mislead the training code.
RESERVED_ENV_PREFIXES = ("AIP_", "CLOUD_ML_")
MAX_CONTAINER_ITEMS = 1000
# Labels: at most 64 per resource, two of which Train sets. Keys starting with "goog" are Google's.
MAX_LABELS = 64
TRAIN_LABELS = 2
LABEL_KEY_RE = re.compile(r"\A[a-z][a-z0-9_-]{0,63}\Z")
LABEL_VALUE_RE = re.compile(r"\A[a-z0-9_-]{0,64}\Z")
RESERVED_LABEL_PREFIXES = ("train-", "goog")
DISPLAY_NAME_MAX_LENGTH = 128
# Scheduling strategies Train offers (STANDARD is on-demand; SPOT preemptible; FLEX_START queues for
# capacity up to maxWaitDuration).
STRATEGIES = ("STANDARD", "SPOT", "FLEX_START")
DEFAULT_FLEX_START_WAIT_SECONDS = 24 * 3600  # Vertex's default maxWaitDuration
MAX_WAIT_SECONDS = 7 * 24 * 3600
MAX_BOOT_DISK_GB = 65536
MIN_BOOT_DISK_GB = 100  # Vertex's default and minimum for custom training


def label_value(value: str) -> str:
    """A Train label key or value in Vertex's alphabet (lowercase); Train's own grammar is a subset."""
    return value.lower()


def image_errors(image: str) -> list[str]:
    """Why Vertex AI cannot pull `image`, or []. Images in Train's registry are mirrored to the account's
    Artifact Registry repository before submission."""
    try:
        ref = parse_reference(image)
    except InvalidReference as exc:
        return [str(exc)]
    if ref.domain and is_train_registry(ref.domain):
        return []
    if not (ARTIFACT_REGISTRY_HOST_RE.match(ref.domain) or ref.domain in CONTAINER_REGISTRY_HOSTS):
        return [f"Vertex AI runs images from Artifact Registry (<location>-docker.pkg.dev/...), Container Registry "
                f"(gcr.io/...) or Train's registry (mirrored to Artifact Registry); {ref.domain or 'Docker Hub'} "
                f"is none of these."]
    if len(image) > IMAGE_URI_MAX_LENGTH:
        return [f"Vertex AI accepts image references of at most {IMAGE_URI_MAX_LENGTH} characters."]
    return []


def mount_errors(spec: JobSpec) -> dict[str, str]:
    return {f"storage_mounts[{index}].source": message for index, mount in enumerate(spec.storage_mounts)
            if mount.scheme == "gs" and (message := gs_uri_error(mount.source))}


def env_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    total = len(spec.env) + len(spec.storage_mounts) + 1
    if total > MAX_ENV:
        errors["env"] = (f"Vertex AI takes at most {MAX_ENV} variables, including one per mount and TRAIN_JOB_ID; "
                         f"this job needs {total}.")
    for key in spec.env:
        if key.upper().startswith(RESERVED_ENV_PREFIXES):
            errors[f"env.{key}"] = f"Vertex AI sets variables starting with {', '.join(RESERVED_ENV_PREFIXES)}."
    return errors


def container_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    if not spec.command:
        errors["command"] = "Required by the vertex-ai backend (it overrides the image's ENTRYPOINT)."
    for field, items in (("command", spec.command), ("args", spec.args)):
        if len(items) > MAX_CONTAINER_ITEMS:
            errors[field] = f"Vertex AI takes at most {MAX_CONTAINER_ITEMS} items."
    return errors


def label_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    if len(spec.labels) > MAX_LABELS - TRAIN_LABELS:
        errors["labels"] = f"Vertex AI takes at most {MAX_LABELS - TRAIN_LABELS} labels (Train adds two of its own)."
    seen: dict[str, str] = {}
    for key, value in spec.labels.items():
        vertex_key = label_value(key)
        if key.startswith(RESERVED_LABEL_PREFIXES):
            errors[f"labels.{key}"] = (f"Vertex AI label keys starting with {' or '.join(RESERVED_LABEL_PREFIXES)} "
                                       f"belong to Train and Google.")
        elif not LABEL_KEY_RE.match(vertex_key) or not LABEL_VALUE_RE.match(label_value(value)):
            errors[f"labels.{key}"] = ("Vertex AI labels are at most 64 lowercase letters, digits, '_' or '-'; "
                                       "keys start with a letter.")
        elif vertex_key in seen:
            errors[f"labels.{key}"] = f"Vertex AI labels are lowercase: this key and {seen[vertex_key]!r} collide."
        seen.setdefault(vertex_key, key)
    return errors


def resource_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    machine_type = spec.resources.get("machine_type")
    if not machine_type:
        errors["resources.machine_type"] = "Required by the vertex-ai backend: a machine type such as a2-highgpu-1g."
    elif not MACHINE_TYPE_RE.match(machine_type):
        errors["resources.machine_type"] = (
            f"{machine_type!r} is not a Compute Engine machine type (e.g. g2-standard-12).")
    accelerator = spec.resources.get("accelerator_type")
    if accelerator and accelerator not in ACCELERATOR_TYPES:
        errors["resources.accelerator_type"] = (f"{accelerator!r} is not a Vertex AI accelerator type; valid values: "
                                                f"{', '.join(ACCELERATOR_TYPES)}.")
    elif accelerator and not spec.resources.get("accelerator_count"):
        errors["resources.accelerator_count"] = "Required with accelerator_type: how many per replica (1 or more)."
    return errors


def strategy(spec: JobSpec) -> str:
    options = spec.backend_options
    return "SPOT" if options.get("spot") is True else options.get("strategy", "STANDARD")


def option_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    options = spec.backend_options
    checks = {
        "strategy": lambda v: v in STRATEGIES or f"One of {', '.join(STRATEGIES)}.",
        "spot": lambda v: isinstance(v, bool) or "true or false.",
        "max_wait_seconds": lambda v: _is_int(v, 0, MAX_WAIT_SECONDS) or (
            f"A whole number of seconds from 0 (wait forever) to {MAX_WAIT_SECONDS}."),
        "boot_disk_size_gb": lambda v: _is_int(v, MIN_BOOT_DISK_GB, MAX_BOOT_DISK_GB) or (
            f"A whole number from {MIN_BOOT_DISK_GB} to {MAX_BOOT_DISK_GB}."),
    }
    for key, value in options.items():
        check = checks.get(key)
        if check is None:
            errors[f"backend_options.{key}"] = f"Unknown option; the vertex-ai backend takes {', '.join(checks)}."
        elif (result := check(value)) is not True:
            errors[f"backend_options.{key}"] = result
    if options.get("spot") is True and options.get("strategy", "SPOT") != "SPOT":
        errors["backend_options.spot"] = "Conflicts with strategy; set one of them."
    if "max_wait_seconds" in options and strategy(spec) != "FLEX_START":
        errors.setdefault("backend_options.max_wait_seconds", 'Applies only with "strategy": "FLEX_START".')
    return errors


def _is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def spec_errors(spec: JobSpec) -> dict[str, str]:
    """Every reason Vertex AI cannot run `spec`, keyed by field path (empty when it can)."""
    errors = {}
    if messages := image_errors(spec.image):
        errors["image"] = messages[0]
    for check in (mount_errors, env_errors, container_errors, label_errors, resource_errors, option_errors):
        errors.update(check(spec))
    return errors
