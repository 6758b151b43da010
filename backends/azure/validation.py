"""What Azure ML can run: the checks behind `AzureMLBackend.validate`, each error keyed by the field
path a user fixes."""

import re

from backends.azure.config import ACR_RE
from backends.azure.translation import DISTRIBUTIONS
from backends.base import JobSpec
from registry.hosts import is_train_registry
from registry.reference import InvalidReference, parse_reference

# azureml://datastores/<datastore>/paths/<path>: datastores are named with letters, digits and '_'.
MOUNT_RE = re.compile(r"\Aazureml://datastores/(?P<datastore>[A-Za-z0-9_]{1,255})/paths/(?P<path>[^\x00-\x1f\x7f\\]+)\Z")
# Azure substitutes ${{…}} expressions anywhere in a command string, quoting or not: a user string
# containing one would not reach the program as written.
PLACEHOLDER = "${{"
# Variables the Azure ML runtime and Batch set in the container.
RESERVED_ENV_PREFIXES = ("AZUREML_", "AZ_BATCH")
TRAIN_TAG_PREFIX = "train-"
# Azure VM sizes: Standard_<family and size>, such as Standard_NC24ads_A100_v4.
VM_SIZE_RE = re.compile(r"\AStandard_[A-Za-z0-9_]{1,60}\Z")
MAX_INSTANCES = 100
MAX_PROCESSES_PER_INSTANCE = 64
OPTIONS = ("spot", "distribution", "processes_per_instance")


def image_errors(image: str, config: dict) -> list[str]:
    """Train's images are mirrored to the workspace's ACR (`acr`); an image already in an ACR is run
    as named; anything else is refused."""
    try:
        ref = parse_reference(image)
    except InvalidReference as exc:
        return [str(exc)]
    if ref.domain and is_train_registry(ref.domain):
        if not config.get("acr"):
            return ["Images in Train's registry are mirrored to the workspace's container registry; this account's "
                    "azure-ml configuration names none (set acr to <name>.azurecr.io)."]
        return []
    if not ACR_RE.match(ref.domain or ""):
        return [f"Azure ML runs images from Azure Container Registry (<name>.azurecr.io/repo:tag) or from Train's "
                f"registry (mirrored to the workspace's ACR); {ref.domain or 'Docker Hub'} is neither."]
    return []


def mount_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    for index, mount in enumerate(spec.storage_mounts):
        if mount.scheme != "azureml":
            continue  # the base class names the scheme
        match = MOUNT_RE.match(mount.source)
        if match is None:
            errors[f"storage_mounts[{index}].source"] = (
                "Must be azureml://datastores/<datastore>/paths/<path> (a datastore of the workspace).")
        elif ".." in match["path"].split("/") or PLACEHOLDER in mount.source or "//" in match["path"]:
            errors[f"storage_mounts[{index}].source"] = "The path must be normalised (no '..', '//' or '${{')."
    return errors


def command_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    for field, items in (("command", spec.command), ("args", spec.args)):
        for index, item in enumerate(items):
            if PLACEHOLDER in item:
                errors[f"{field}[{index}]"] = ("Azure ML replaces '${{' expressions in a job's command; it cannot "
                                               "pass this string to the program.")
    return errors


def env_errors(spec: JobSpec) -> dict[str, str]:
    return {f"env.{key}": f"Azure ML sets variables starting with {' or '.join(RESERVED_ENV_PREFIXES)}."
            for key in spec.env if key.startswith(RESERVED_ENV_PREFIXES)}


def label_errors(spec: JobSpec) -> dict[str, str]:
    return {f"labels.{key}": f"Label keys starting with {TRAIN_TAG_PREFIX!r} are Train's own tags."
            for key in spec.labels if key.startswith(TRAIN_TAG_PREFIX)}


def resource_errors(spec: JobSpec, config: dict) -> dict[str, str]:
    errors = {}
    machine_type = spec.resources.get("machine_type")
    if config.get("compute"):
        if machine_type:
            errors["resources.machine_type"] = (
                f"Jobs run on the compute cluster {config['compute']}, whose VM size is fixed; leave machine_type "
                "unset (or configure azure-ml without compute, for serverless).")
    elif not machine_type:
        errors["resources.machine_type"] = "Required for serverless compute: an Azure VM size such as Standard_NC6s_v3."
    elif not VM_SIZE_RE.match(machine_type):
        errors["resources.machine_type"] = f"{machine_type!r} is not an Azure VM size (Standard_<size>)."
    if spec.resources.get("accelerator_type") or spec.resources.get("accelerator_count"):
        errors["resources.accelerator_type"] = (
            "Azure VM sizes come with their GPUs (Standard_NC24ads_A100_v4 has one A100); choose the machine_type "
            "and leave accelerator_type and accelerator_count unset.")
    if int(spec.resources.get("instance_count", 1)) > MAX_INSTANCES:
        errors["resources.instance_count"] = f"At most {MAX_INSTANCES} instances."
    return errors


def option_errors(spec: JobSpec) -> dict[str, str]:
    errors = {}
    checks = {
        "spot": lambda v: isinstance(v, bool) or "true or false.",
        "distribution": lambda v: v in DISTRIBUTIONS or f"One of {', '.join(DISTRIBUTIONS)}.",
        "processes_per_instance": lambda v: (isinstance(v, int) and not isinstance(v, bool)
                                             and 1 <= v <= MAX_PROCESSES_PER_INSTANCE)
        or f"A whole number from 1 to {MAX_PROCESSES_PER_INSTANCE}.",
    }
    for key, value in spec.backend_options.items():
        check = checks.get(key)
        if check is None:
            errors[f"backend_options.{key}"] = f"Unknown option; the azure-ml backend takes {', '.join(OPTIONS)}."
        elif (result := check(value)) is not True:
            errors[f"backend_options.{key}"] = result
    return errors


def spec_errors(spec: JobSpec, config: dict) -> dict[str, str]:
    """Every reason Azure ML cannot run `spec`, keyed by field path (empty when it can)."""
    errors = {}
    if messages := image_errors(spec.image, config):
        errors["image"] = messages[0]
    if not spec.command:
        errors["command"] = "Required by azure-ml: the program to run."
    errors.update(mount_errors(spec))
    errors.update(command_errors(spec))
    errors.update(env_errors(spec))
    errors.update(label_errors(spec))
    errors.update(resource_errors(spec, config))
    errors.update(option_errors(spec))
    return errors
