"""The pure translation of a JobSpec into Azure ML's two native requests (golden-tested):

1. the environment version `PUT …/environments/train-image/versions/<content hash>`, holding the image
   by digest; its version is a hash of its body, so re-sending it is harmless (idempotent by content);
2. the command job `PUT …/jobs/<name>`, `jobType` Command, whose `command` is one shell string:
   it exports STORAGE_MOUNT_<i>_PATH from Azure's `${{inputs.mount<i>}}` / `${{outputs.mount<i>}}`
   placeholders (Azure chooses the mount paths at run time and substitutes these tokens in the command
   only), then execs the user's argv, quoted with shlex.join.
"""

from __future__ import annotations

import hashlib
import json
import shlex

from backends.azure.api import Workspace
from backends.base import JobSpec

ENVIRONMENT_NAME = "train-image"
EXPERIMENT_NAME = "train"
JOB_ID_TAG = "train-job-id"
ACCOUNT_TAG = "train-account"
# Immutable job properties: how Train recognises its own job by name (ownership, exactly once).
JOB_ID_PROPERTY = "train_job_id"
ACCOUNT_PROPERTY = "train_account"
DISTRIBUTIONS = {"pytorch": "PyTorch", "mpi": "Mpi", "tensorflow": "TensorFlow"}
PROCESS_COUNT_FIELD = {"PyTorch": "processCountPerInstance", "Mpi": "processCountPerInstance",
                       "TensorFlow": "workerCount"}


def workspace_of(config: dict) -> Workspace:
    return Workspace(config["subscription_id"], config["resource_group"], config["workspace"])


def mount_name(index: int) -> str:
    return f"mount{index}"


def shell_command(spec: JobSpec) -> str:
    """`export STORAGE_MOUNT_<i>_PATH="${{inputs|outputs.mount<i>}}"; …; exec <argv>`. The placeholders
    are Azure's; the user's argv is quoted so the shell hands the program exactly these strings."""
    exports = []
    for index, mount in enumerate(spec.storage_mounts):
        side = "outputs" if mount.mode == "rw" else "inputs"
        exports.append(f'export STORAGE_MOUNT_{index}_PATH="${{{{{side}.{mount_name(index)}}}}}"')
    return "; ".join([*exports, "exec " + shlex.join([*spec.command, *spec.args])])


def environment_request(spec: JobSpec) -> tuple[str, dict]:
    """The environment version's (version, body); the version is the hash of the body."""
    body = {"properties": {"image": spec.image, "isAnonymous": True, "isArchived": False,
                           "description": "The image of a Train job, by digest."}}
    version = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:32]
    return version, body


def _resources(spec: JobSpec, config: dict) -> dict:
    resources = {"instanceCount": int(spec.resources.get("instance_count", 1))}
    if not config.get("compute"):  # serverless: the VM size is the job's; a cluster fixes its own
        resources["instanceType"] = spec.resources["machine_type"]
    return resources


def _distribution(spec: JobSpec) -> dict | None:
    options = spec.backend_options
    if "distribution" not in options and int(spec.resources.get("instance_count", 1)) <= 1:
        return None
    kind = DISTRIBUTIONS[options.get("distribution", "pytorch")]
    return {"distributionType": kind, PROCESS_COUNT_FIELD[kind]: int(options.get("processes_per_instance", 1))}


def job_request(spec: JobSpec, name: str, config: dict, environment_id: str) -> dict:
    workspace = workspace_of(config)
    inputs, outputs = {}, {}
    for index, mount in enumerate(spec.storage_mounts):
        uri = mount.source if mount.source.endswith("/") else mount.source + "/"
        if mount.mode == "rw":
            outputs[mount_name(index)] = {"jobOutputType": "uri_folder", "uri": uri, "mode": "ReadWriteMount"}
        else:
            inputs[mount_name(index)] = {"jobInputType": "uri_folder", "uri": uri, "mode": "ReadOnlyMount"}
    properties = {
        "jobType": "Command",
        "displayName": spec.name,
        "experimentName": EXPERIMENT_NAME,
        "command": shell_command(spec),
        "environmentId": environment_id,
        "environmentVariables": {**spec.env, "TRAIN_JOB_ID": spec.job_id},
        "resources": _resources(spec, config),
        "limits": {"jobLimitsType": "Command", "timeout": f"PT{spec.max_runtime_seconds}S"},
        "tags": {**spec.labels, JOB_ID_TAG: spec.job_id, ACCOUNT_TAG: spec.account_id},
        "properties": {JOB_ID_PROPERTY: spec.job_id, ACCOUNT_PROPERTY: spec.account_id},
    }
    if config.get("compute"):
        properties["computeId"] = workspace.compute_id(config["compute"])
    if inputs:
        properties["inputs"] = inputs
    if outputs:
        properties["outputs"] = outputs
    if (distribution := _distribution(spec)) is not None:
        properties["distribution"] = distribution
    if "spot" in spec.backend_options:
        properties["queueSettings"] = {"jobTier": "Spot" if spec.backend_options["spot"] else "Standard"}
    return {"properties": properties}


def build_request(spec: JobSpec, name: str, config: dict) -> dict:
    """Both native requests, as sent: {"environment": {path, body}, "job": {path, body}} (paths without
    the ARM host and api-version)."""
    workspace = workspace_of(config)
    version, environment = environment_request(spec)
    environment_id = workspace.environment_version_id(ENVIRONMENT_NAME, version)
    return {"environment": {"path": environment_id, "body": environment},
            "job": {"path": workspace.job_path(name), "body": job_request(spec, name, config, environment_id)}}
