"""The Azure ML translation: the environment version and command job requests for each kind of job,
pinned by golden files (tests/backends/golden/azure-ml_<case>.json; regenerate with UPDATE_GOLDEN=1),
and the command string run through a real `sh` with Azure's placeholders substituted, checking the
exact argv the program receives."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from backends.azure.azureml import NAME_RE, AzureMLBackend
from backends.azure.translation import build_request, shell_command
from backends.base import JobSpec, Mount
from tests.backends.azureml_support import ACR_IMAGE, DIGEST, RESOURCE_GROUP, SUBSCRIPTION, TENANT, WORKSPACE

GOLDEN = Path(__file__).parent / "golden"
JOB_ID = "job_0123456789abcdef0123456789abcdef"
SERVERLESS = {"subscription_id": SUBSCRIPTION, "resource_group": RESOURCE_GROUP, "workspace": WORKSPACE,
              "region": "westeurope", "tenant_id": TENANT, "acr": "acmeimages.azurecr.io", "mirror_on_push": False}
CLUSTER = {**SERVERLESS, "compute": "gpu-cluster"}


def spec(**changes) -> JobSpec:
    values = {"job_id": JOB_ID, "account_id": "acme", "name": "sft", "image": f"{ACR_IMAGE}@{DIGEST}",
              "command": ("python", "train.py"), "resources": {"machine_type": "Standard_NC6s_v3", "instance_count": 1},
              "max_runtime_seconds": 3600}
    values.update(changes)
    return JobSpec(**values)


CASES = {
    "minimal_serverless": (spec(), SERVERLESS),
    "cluster": (spec(resources={"instance_count": 1}), CLUSTER),
    "full": (spec(
        args=("--epochs", "3"), env={"WANDB_PROJECT": "sft", "HF_HOME": "/tmp/hf"},
        resources={"machine_type": "Standard_NC24ads_A100_v4", "instance_count": 2},
        storage_mounts=(Mount("azureml://datastores/corpus/paths/web/2024"),
                        Mount("azureml://datastores/ckpt/paths/run3/", "rw")),
        labels={"team": "nlp", "cost-center": "r-and-d"}, max_runtime_seconds=86400,
        backend_options={"spot": True, "distribution": "pytorch", "processes_per_instance": 4},
    ), SERVERLESS),
    "mirrored_image": (spec(image=f"acmeimages.azurecr.io/train/acme/trainer@{DIGEST}"), SERVERLESS),
    "tagged_acr_image": (spec(image=f"{ACR_IMAGE}:v1"), SERVERLESS),
    "spot_off": (spec(backend_options={"spot": False}), SERVERLESS),
    "mpi_on_cluster": (spec(resources={"instance_count": 4}, backend_options={"distribution": "mpi"}), CLUSTER),
    "tensorflow_single_node": (spec(backend_options={"distribution": "tensorflow", "processes_per_instance": 2}),
                               SERVERLESS),
    "quoting": (spec(command=("bash", "-c", "echo \"$HOME\" 'it''s' `id` $(date) ; rm -rf /"),
                     args=("--name=a b", "", "*", "ü\n\t")), SERVERLESS),
    "longest_runtime": (spec(max_runtime_seconds=28 * 24 * 3600, storage_mounts=(
        Mount("azureml://datastores/out/paths/x", "rw"), Mount("azureml://datastores/in/paths/y"))), CLUSTER),
}


@pytest.mark.parametrize("case", CASES)
def test_requests_match_golden_files(case):
    job, config = CASES[case]
    request = build_request(job, AzureMLBackend.remote_name(job.job_id), config)
    path = GOLDEN / f"azure-ml_{case}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(json.dumps(request, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    assert request == json.loads(path.read_text()), f"{path.name} differs; UPDATE_GOLDEN=1 regenerates it"


def test_every_field_lands_where_azure_reads_it():
    job, config = CASES["full"]
    request = build_request(job, "train-x", config)
    properties = request["job"]["body"]["properties"]
    assert request["environment"]["body"]["properties"]["image"] == f"{ACR_IMAGE}@{DIGEST}"
    assert properties["environmentId"] == request["environment"]["path"]
    assert properties["jobType"] == "Command" and "computeId" not in properties
    assert properties["resources"] == {"instanceCount": 2, "instanceType": "Standard_NC24ads_A100_v4"}
    assert properties["distribution"] == {"distributionType": "PyTorch", "processCountPerInstance": 4}
    assert properties["limits"] == {"jobLimitsType": "Command", "timeout": "PT86400S"}
    assert properties["queueSettings"] == {"jobTier": "Spot"}
    assert properties["inputs"]["mount0"] == {"jobInputType": "uri_folder", "mode": "ReadOnlyMount",
                                              "uri": "azureml://datastores/corpus/paths/web/2024/"}
    assert properties["outputs"]["mount1"]["mode"] == "ReadWriteMount"
    assert properties["tags"] == {"team": "nlp", "cost-center": "r-and-d", "train-job-id": JOB_ID,
                                  "train-account": "acme"}
    assert properties["properties"] == {"train_job_id": JOB_ID, "train_account": "acme"}
    assert properties["environmentVariables"] == {"WANDB_PROJECT": "sft", "HF_HOME": "/tmp/hf", "TRAIN_JOB_ID": JOB_ID}
    cluster = build_request(CASES["cluster"][0], "train-x", CLUSTER)["job"]["body"]["properties"]
    assert cluster["computeId"].endswith(f"/workspaces/{WORKSPACE}/computes/gpu-cluster")
    assert cluster["resources"] == {"instanceCount": 1}


def test_the_environment_version_is_its_content_hash():
    one = build_request(spec(), "a", SERVERLESS)["environment"]
    assert one == build_request(spec(args=("--other",)), "b", SERVERLESS)["environment"]
    other = build_request(spec(image=f"{ACR_IMAGE}@sha256:{'cd' * 32}"), "a", SERVERLESS)["environment"]
    assert other["path"] != one["path"]


HOSTILE = [
    ("plain", ["python", "train.py"]),
    ("spaces and empty", ["prog", "a b", "", "  "]),
    ("quotes", ["prog", "it's", '"double"', "'", '"']),
    ("shell syntax", ["prog", "$HOME", "`id`", "$(date)", ";", "&&", "|", ">out", "*", "~", "#x", "\\n"]),
    ("dollar braces", ["prog", "${HOME}", "${x:-y}", "$((1+2))"]),
    ("newlines and unicode", ["prog", "line1\nline2", "tab\there", "ü日本", "\r"]),
    ("dash first", ["prog", "-c", "--", "-"]),
]


@pytest.mark.parametrize("label,argv", HOSTILE, ids=[label for label, _ in HOSTILE])
def test_the_command_string_gives_the_program_exactly_its_argv(tmp_path, label, argv):
    """Run the generated command through sh, with Azure's ${{…}} placeholders replaced by mount paths
    as the runtime does, and compare what the program sees."""
    probe = tmp_path / "probe.py"
    probe.write_text("import json, os, sys\nprint(json.dumps({'argv': sys.argv[1:], 'mounts': "
                     "[os.environ.get(f'STORAGE_MOUNT_{i}_PATH') for i in range(2)]}))\n")
    job = spec(command=(sys.executable, str(probe)), args=tuple(argv[1:]),
               storage_mounts=(Mount("azureml://datastores/in/paths/a"),
                               Mount("azureml://datastores/out/paths/b", "rw")))
    command = shell_command(job)
    assert '${{inputs.mount0}}' in command and '${{outputs.mount1}}' in command
    substituted = (command.replace("${{inputs.mount0}}", "/mnt/azureml/cr/j/1/cap/data-capability/wd/mount0")
                   .replace("${{outputs.mount1}}", "/mnt/azureml/cr/j/1/cap/data-capability/wd/mount1"))
    result = subprocess.run(["sh", "-c", substituted], capture_output=True, text=True, timeout=30, check=True)
    seen = json.loads(result.stdout)
    assert seen["argv"] == argv[1:]
    assert seen["mounts"] == ["/mnt/azureml/cr/j/1/cap/data-capability/wd/mount0",
                              "/mnt/azureml/cr/j/1/cap/data-capability/wd/mount1"]


def test_job_names_are_lower_case_and_within_azure_grammar():
    name = AzureMLBackend.remote_name("job_0123456789ABCDEF0123456789abcdef")
    assert name == "train-0123456789abcdef0123456789abcdef" and NAME_RE.match(name)
