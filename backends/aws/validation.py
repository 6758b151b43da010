"""What SageMaker can run: the checks behind `SageMakerBackend.validate`, each error keyed by the
field path a user fixes. Limits come from the CreateTrainingJob API model and SageMaker's docs."""

import re

from backends.aws.config import DEFAULT_ECR_PREFIX, ECR_NAME_MAX_LENGTH, ECR_NAME_RE, s3_uri_error
from backends.base import JobSpec
from registry.hosts import is_train_registry
from registry.reference import InvalidReference, parse_reference

# ECR hosts: <12-digit account>.dkr.ecr[-fips].<region>.amazonaws.com[.cn]. SageMaker pulls other
# private registries only through a VPC and a Lambda auth hook, which Train does not set up.
ECR_HOST_RE = re.compile(
    r"\A(?P<account>\d{12})\.dkr\.ecr(?:-fips)?\.(?P<region>[a-z0-9-]+)\.amazonaws\.com(?:\.cn)?\Z")
TRAINING_IMAGE_MAX_LENGTH = 255
# What a mirrored image's TrainingImage adds to its ECR repository name: the registry host (a 12-digit
# account) and "@sha256:<64 hex>".
ECR_ACCOUNT_DIGITS = 12
DIGEST_SUFFIX_LENGTH = len("@sha256:") + 64
# InputDataConfig holds at most 20 channels, one per read-only mount; a rw mount is the checkpoint.
MAX_MOUNTS = 20
MAX_WRITABLE_MOUNTS = 1  # SageMaker syncs exactly one checkpoint directory
# Environment: at most 100 entries (Train adds the mount paths and TRAIN_JOB_ID), 512 characters each.
MAX_ENVIRONMENT_ENTRIES = 100
MAX_ENVIRONMENT_CHARS = 512
# SageMaker sets these in the container; a user value would be overwritten or break the toolkit.
RESERVED_ENV_PREFIXES = ("SM_", "SAGEMAKER_", "TRAINING_JOB_")
# ContainerEntrypoint / ContainerArguments: 1-100 items of at most 256 characters.
MAX_CONTAINER_ITEMS = 100
MAX_CONTAINER_ITEM_CHARS = 256
# Tags: at most 50 per job, two of which Train uses (train-job-id, train-account).
MAX_TAGS = 50
TRAIN_TAG_PREFIX = "train-"
# ml.<family>.<size>; checked by shape, not against a list, so a new instance type needs no release.
MACHINE_TYPE_RE = re.compile(r"\Aml\.[a-z0-9-]+\.[a-z0-9]+\Z")
MAX_VOLUME_SIZE_GB = 16384
INPUT_MODES = ("FastFile", "File")  # Pipe gives FIFOs, not a directory, so it cannot back a mount
MAX_WAIT_SECONDS = 28 * 24 * 3600 * 2


def ecr_repository(prefix: str, repository: str) -> str:
    """The ECR repository that holds mirrors of Train's `repository` (`<account>/<path>`)."""
    return f"{prefix}/{repository}"


def ecr_repository_error(prefix: str, repository: str) -> str | None:
    """Why ECR would refuse the mirror repository of `repository`, or None. Train's repository names
    allow separators ECR does not ('__', '--')."""
    name = ecr_repository(prefix, repository)
    if len(name) > ECR_NAME_MAX_LENGTH:
        return f"Its ECR repository ({name[:40]}…) would be longer than ECR's {ECR_NAME_MAX_LENGTH} characters."
    if not ECR_NAME_RE.match(name):
        return (f"ECR cannot hold a repository named {name!r}: ECR joins lowercase letters and digits with "
                "single '.', '_' or '-' only. Push the image under such a name.")
    return None


def mirrored_image_errors(path: str, config: dict) -> list[str]:
    """Why an image of Train's registry cannot be mirrored to ECR and run, or []: its ECR repository
    name must be one ECR accepts, and its TrainingImage (the ECR reference by digest) one SageMaker does."""
    prefix = config.get("ecr_repository_prefix") or DEFAULT_ECR_PREFIX
    if message := ecr_repository_error(prefix, path):
        return [message]
    region = config.get("region", "")
    host = f"{'0' * ECR_ACCOUNT_DIGITS}.dkr.ecr.{region}.amazonaws.com" + (".cn" if region.startswith("cn-") else "")
    length = len(f"{host}/{ecr_repository(prefix, path)}") + DIGEST_SUFFIX_LENGTH
    if length > TRAINING_IMAGE_MAX_LENGTH:
        return [f"Mirrored to ECR, this image's reference would be {length} characters; SageMaker accepts at "
                f"most {TRAINING_IMAGE_MAX_LENGTH}. Use a shorter repository name."]
    return []


def image_errors(image: str, config: dict) -> list[str]:
    """Why SageMaker cannot run `image`, or []. Images in Train's registry are mirrored to the account's
    ECR before submission (backends/aws/ecr.py); other images must already be in ECR in the job's region."""
    region = config.get("region", "")
    try:
        ref = parse_reference(image)
    except InvalidReference as exc:
        return [str(exc)]
    if ref.domain and is_train_registry(ref.domain):
        return mirrored_image_errors(ref.path, config)
    match = ECR_HOST_RE.match(ref.domain)
    if match is None:
        return [f"SageMaker runs images from Amazon ECR or from Train's registry (mirrored to ECR), such as "
                f"123456789012.dkr.ecr.{region}.amazonaws.com/repo:tag; {ref.domain or 'Docker Hub'} is neither."]
    if match["region"] != region:
        return [f"The image is in ECR in {match['region']}, but this account runs SageMaker jobs in {region}; "
                f"SageMaker pulls from ECR in the job's region."]
    if len(image) > TRAINING_IMAGE_MAX_LENGTH:
        return [f"SageMaker accepts image references of at most {TRAINING_IMAGE_MAX_LENGTH} characters."]
    return []


def mount_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    if len(spec.storage_mounts) > MAX_MOUNTS:
        errors["storage_mounts"] = f"SageMaker takes at most {MAX_MOUNTS} mounts (input channels)."
    writable = [index for index, mount in enumerate(spec.storage_mounts) if mount.mode == "rw"]
    if len(writable) > MAX_WRITABLE_MOUNTS:
        errors[f"storage_mounts[{writable[1]}].mode"] = (
            "SageMaker has one writable location (the checkpoint directory); mount at most one source 'rw'.")
    for index, mount in enumerate(spec.storage_mounts):
        if mount.scheme == "s3" and (message := s3_uri_error(mount.source)):
            errors[f"storage_mounts[{index}].source"] = message
    return errors


def container_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    for field, items in (("command", spec.command), ("args", spec.args)):
        if len(items) > MAX_CONTAINER_ITEMS:
            errors[field] = f"SageMaker takes at most {MAX_CONTAINER_ITEMS} items."
        for index, item in enumerate(items):
            if len(item) > MAX_CONTAINER_ITEM_CHARS:
                errors[f"{field}[{index}]"] = f"SageMaker takes items of at most {MAX_CONTAINER_ITEM_CHARS} characters."
    return errors


def env_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    total = len(spec.env) + len(spec.storage_mounts) + 1  # + STORAGE_MOUNT_<i>_PATH and TRAIN_JOB_ID
    if total > MAX_ENVIRONMENT_ENTRIES:
        errors["env"] = (f"SageMaker takes at most {MAX_ENVIRONMENT_ENTRIES} variables, including one per mount "
                         f"and TRAIN_JOB_ID; this job needs {total}.")
    for key, value in spec.env.items():
        if key.startswith(RESERVED_ENV_PREFIXES):
            errors[f"env.{key}"] = f"SageMaker sets variables starting with {', '.join(RESERVED_ENV_PREFIXES)}."
        elif len(key) > MAX_ENVIRONMENT_CHARS or len(value) > MAX_ENVIRONMENT_CHARS:
            errors[f"env.{key}"] = f"SageMaker takes names and values of at most {MAX_ENVIRONMENT_CHARS} characters."
    return errors


def label_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    if len(spec.labels) > MAX_TAGS - 2:
        errors["labels"] = f"SageMaker takes at most {MAX_TAGS - 2} labels (Train adds two tags of its own)."
    for key in spec.labels:
        if key.startswith(TRAIN_TAG_PREFIX):
            errors[f"labels.{key}"] = f"Label keys starting with {TRAIN_TAG_PREFIX!r} are Train's own tags."
    return errors


def resource_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    machine_type = spec.resources.get("machine_type")
    if not machine_type:
        errors["resources.machine_type"] = "Required by the sagemaker backend: an instance type such as ml.g5.xlarge."
    elif not MACHINE_TYPE_RE.match(machine_type):
        errors["resources.machine_type"] = f"{machine_type!r} is not a SageMaker instance type (ml.<family>.<size>)."
    if spec.resources.get("accelerator_type") or spec.resources.get("accelerator_count"):
        errors["resources.accelerator_type"] = (
            "SageMaker instance types come with their accelerators (ml.g5.* has NVIDIA A10G, ml.p4d.* A100); "
            "choose the machine_type and leave accelerator_type and accelerator_count unset.")
    return errors


def option_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    checks = {
        "volume_size_gb": lambda v: (_is_int(v, 1, MAX_VOLUME_SIZE_GB)
                                     or f"A whole number from 1 to {MAX_VOLUME_SIZE_GB}."),
        "input_mode": lambda v: v in INPUT_MODES or f"One of {', '.join(INPUT_MODES)}.",
        "spot": lambda v: isinstance(v, bool) or "true or false.",
        "max_wait_seconds": lambda v: (_is_int(v, spec.max_runtime_seconds, MAX_WAIT_SECONDS)
                                       or f"A whole number from max_runtime_seconds to {MAX_WAIT_SECONDS}."),
    }
    for key, value in spec.backend_options.items():
        check = checks.get(key)
        if check is None:
            errors[f"backend_options.{key}"] = f"Unknown option; the sagemaker backend takes {', '.join(checks)}."
        elif (result := check(value)) is not True:
            errors[f"backend_options.{key}"] = result
    if "max_wait_seconds" in spec.backend_options and not spec.backend_options.get("spot"):
        errors.setdefault("backend_options.max_wait_seconds", "Applies only with \"spot\": true.")
    return errors


def _is_int(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def spec_errors(spec: JobSpec, config: dict) -> dict[str, str]:
    """Every reason SageMaker cannot run `spec`, keyed by field path (empty when it can)."""
    errors = {}
    if messages := image_errors(spec.image, config):
        errors["image"] = messages[0]
    for check in (mount_errors, container_errors, env_errors, label_errors, resource_errors, option_errors):
        errors.update(check(spec))
    return errors
