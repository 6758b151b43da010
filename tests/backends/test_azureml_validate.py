"""What Azure ML cannot run is refused at submission with a 400 naming the field, nothing created:
checked through the REST API as users send it, and each rule directly."""

import pytest

from backends.azure.azureml import AzureMLBackend
from backends.base import Mount, SpecError
from jobs.models import Job
from tests.backends.invariants import configure
from tests.backends.test_azureml_request import CLUSTER, SERVERLESS, spec
from tests.backends.test_azureml_submit import AZURE_BODY


def errors_for(config=SERVERLESS, **changes) -> dict:
    with pytest.raises(SpecError) as caught:
        AzureMLBackend(config).validate(spec(**changes))
    return caught.value.errors


def test_a_valid_spec_passes():
    AzureMLBackend(SERVERLESS).validate(spec(
        storage_mounts=(Mount("azureml://datastores/in/paths/a/b"), Mount("azureml://datastores/out/paths/c", "rw")),
        env={"A": "1"}, labels={"team": "x"}, args=("--x", "$HOME", "it's"),
        backend_options={"spot": True, "distribution": "mpi", "processes_per_instance": 8}))
    AzureMLBackend(CLUSTER).validate(spec(resources={"instance_count": 4}))


@pytest.mark.parametrize(("changes", "field", "words"), [
    ({"storage_mounts": (Mount("s3://bkt/data"),)}, "storage_mounts[0].source", "azureml://"),
    ({"storage_mounts": (Mount("gs://bkt/data"),)}, "storage_mounts[0].source", "azureml://"),
    ({"storage_mounts": (Mount("azureml://subscriptions/x/paths/y"),)}, "storage_mounts[0].source", "datastores"),
    ({"storage_mounts": (Mount("azureml://datastores/d-s/paths/y"),)}, "storage_mounts[0].source", "datastores"),
    ({"storage_mounts": (Mount("azureml://datastores/ds/paths/a/../b"),)}, "storage_mounts[0].source", "normalised"),
    ({"storage_mounts": (Mount("azureml://datastores/ds/paths/${{inputs.x}}"),)}, "storage_mounts[0].source",
     "normalised"),
    ({"storage_mounts": (Mount("azureml://datastores/ds/paths/a\\b"),)}, "storage_mounts[0].source", "datastores"),
    ({"command": ("python", "${{inputs.secret}}")}, "command[1]", "${{"),
    ({"args": ("ok", "x${{outputs.y}}")}, "args[1]", "${{"),
    ({"command": ()}, "command", "Required"),
    ({"env": {"AZUREML_RUN_ID": "x"}}, "env.AZUREML_RUN_ID", "Azure ML sets"),
    ({"env": {"AZ_BATCH_NODE_ID": "x"}}, "env.AZ_BATCH_NODE_ID", "Azure ML sets"),
    ({"labels": {"train-job-id": "x"}}, "labels.train-job-id", "Train's own"),
    ({"resources": {"instance_count": 1}}, "resources.machine_type", "Required for serverless"),
    ({"resources": {"machine_type": "ml.g5.xlarge"}}, "resources.machine_type", "Standard_"),
    ({"resources": {"machine_type": "Standard_NC6", "accelerator_type": "V100", "accelerator_count": 1}},
     "resources.accelerator_type", "come with their GPUs"),
    ({"resources": {"machine_type": "Standard_NC6", "instance_count": 101}}, "resources.instance_count", "100"),
    ({"max_runtime_seconds": 28 * 24 * 3600 + 1}, "max_runtime_seconds", "at most"),
    ({"image": "docker.io/library/python:3.12"}, "image", "Azure Container Registry"),
    ({"image": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/x:1"}, "image", "neither"),
    ({"backend_options": {"spot": "yes"}}, "backend_options.spot", "true or false"),
    ({"backend_options": {"distribution": "ray"}}, "backend_options.distribution", "pytorch"),
    ({"backend_options": {"processes_per_instance": 2 ** 63}}, "backend_options.processes_per_instance", "1 to 64"),
    ({"backend_options": {"processes_per_instance": True}}, "backend_options.processes_per_instance", "1 to 64"),
    ({"backend_options": {"volume_size_gb": 10}}, "backend_options.volume_size_gb", "Unknown option"),
])
def test_each_rule_names_its_field(changes, field, words):
    errors = errors_for(**changes)
    assert field in errors, errors
    assert words in " ".join(errors[field])


def test_a_cluster_fixes_the_vm_size():
    errors = errors_for(CLUSTER)
    assert "gpu-cluster" in errors["resources.machine_type"][0]


def test_trains_images_need_an_acr_to_be_mirrored_to():
    config = {key: value for key, value in SERVERLESS.items() if key != "acr"}
    assert "names none" in errors_for(config, image="localhost:8000/acme/trainer:v1")["image"][0]


@pytest.mark.django_db
@pytest.mark.parametrize(("changes", "field"), [
    ({"storage_mounts": [{"source": "s3://bkt/x", "mode": "ro"}]}, "storage_mounts[0].source"),
    ({"args": ["${{inputs.mount0}}"]}, "args[0]"),
    ({"image": "ghcr.io/acme/trainer:v1"}, "image"),
    ({"resources": {"machine_type": "Standard NC6"}}, "resources.machine_type"),
    ({"backend_options": {"spot": 1}}, "backend_options.spot"),
])
def test_the_api_answers_400_naming_the_field_and_creates_nothing(api, member, acme, changes, field):
    configure(acme, {**SERVERLESS, "arm_endpoint": "http://127.0.0.1:9"}, "azure-ml")
    response = api.post("/v1/jobs", {**AZURE_BODY, "name": "bad", **changes}, format="json", **member.headers)
    assert response.status_code == 400, response.content
    assert field in response.json(), response.json()
    assert not Job.objects.exists()
