"""What the local backend accepts and asks the engine for in container mode: the pull reference by
digest, limits from machine_type, GPUs only where CDI has them, mounts, network; and the 400s naming
the field for what the host cannot do. The engine's health check is stood in for (these are the pure
parts; tests/e2e/test_local_containers.py runs real podman)."""

from itertools import pairwise

import pytest

from backends import local
from backends.base import JobSpec, Mount, SpecError
from backends.local import LocalBackend
from backends.local_engine import Engine

DIGEST = "sha256:" + "ab" * 32
PODMAN = Engine("podman", ok=True, version="4.3.1", binary="/usr/bin/podman")


@pytest.fixture
def engine(monkeypatch):
    def use(found: Engine):
        monkeypatch.setattr(local, "local_engine", lambda: found)
        return found

    use(PODMAN)
    return use


def spec(**fields) -> JobSpec:
    values = {"job_id": "job_1", "account_id": "acme", "name": "n", "image": "localhost:8000/acme/app:v1",
              "image_digest": DIGEST, "command": ("python", "train.py"), "args": ("--epochs", "3")}
    return JobSpec(**{**values, **fields})


def errors_of(backend, job) -> dict:
    with pytest.raises(SpecError) as excinfo:
        backend.validate(job)
    return excinfo.value.errors


def test_a_train_image_is_pulled_by_its_pinned_digest_never_by_tag(engine, settings):
    settings.TRAIN_REGISTRY_HOST = "localhost:8000"
    request = LocalBackend().build_request(spec(), "train-1")
    container = request["container"]
    assert container["image"] == f"localhost:8000/acme/app@{DIGEST}"
    assert (container["repository"], container["tls_verify"]) == ("acme/app", False)  # loopback: plain HTTP
    assert container["name"] == "train-1"
    assert container["args"] == ["train.py", "--epochs", "3"]
    args = container["create_args"]
    assert args[args.index("--entrypoint") + 1] == "python"
    assert args[args.index("--network") + 1] == "none"
    assert "--cpus" not in args and "--device" not in args


def test_tls_is_verified_for_a_named_registry_host_and_external_images_are_qualified(engine, settings):
    settings.TRAIN_REGISTRY_HOST = "train.example.com"
    assert LocalBackend.image_reference(spec(image="train.example.com/acme/app:v1")) == (
        f"train.example.com/acme/app@{DIGEST}", "acme/app", True)
    assert LocalBackend.image_reference(spec(image="python:3.11", image_digest="")) == (
        "docker.io/library/python:3.11", "", True)
    assert LocalBackend.image_reference(spec(image=f"ghcr.io/org/x@{DIGEST}", image_digest=DIGEST)) == (
        f"ghcr.io/org/x@{DIGEST}", "", True)


def test_mounts_are_bind_mounts_at_train_paths_with_their_mode(engine, storage_dir):
    (storage_dir / "data").mkdir(exist_ok=True)
    job = spec(storage_mounts=(Mount(f"file://{storage_dir}/data", "ro"), Mount(f"file://{storage_dir}", "rw")))
    LocalBackend().validate(job)
    request = LocalBackend().build_request(job, "train-1")
    args = request["container"]["create_args"]
    volumes = [value for flag, value in pairwise(args) if flag == "--volume"]
    assert volumes == [f"{storage_dir}/data:/mnt/train/mount0:ro", f"{storage_dir}:/mnt/train/mount1:rw"]
    assert request["env"]["STORAGE_MOUNT_0_PATH"] == "/mnt/train/mount0"
    assert request["env"]["STORAGE_MOUNT_1_PATH"] == "/mnt/train/mount1"


def test_machine_type_sets_cpus_and_memory(engine):
    args = LocalBackend().build_request(spec(resources={"machine_type": "0.5cpu-2gb"}), "t")["container"]["create_args"]
    assert args[args.index("--cpus") + 1] == "0.5"
    assert args[args.index("--memory") + 1] == "2048m"


@pytest.mark.parametrize("machine_type", ["2 cpu", "gpu", "1cpu-1tb", "1cpu-1mb", "9999cpu", "0cpu", "1cpu\x00"])
def test_a_machine_type_the_host_cannot_give_is_a_400_naming_it(engine, machine_type):
    assert list(errors_of(LocalBackend(), spec(resources={"machine_type": machine_type}))) == [
        "resources.machine_type"]


def test_limits_and_accelerators_without_an_engine_are_refused(engine):
    engine(Engine("process", ok=True, message="no container engine"))
    errors = errors_of(LocalBackend(), spec(resources={"machine_type": "1cpu", "accelerator_type": "NVIDIA_L4",
                                                       "accelerator_count": 1, "instance_count": 2}))
    assert set(errors) == {"resources.machine_type", "resources.accelerator_count", "resources.instance_count"}


def test_accelerators_need_gpus_described_by_cdi(engine):
    gpu_job = spec(resources={"accelerator_type": "NVIDIA_L4", "accelerator_count": 1})
    assert list(errors_of(LocalBackend(), gpu_job)) == ["resources.accelerator_count"]
    engine(Engine("podman", ok=True, binary="/usr/bin/podman", gpus=True))
    LocalBackend().validate(gpu_job)
    args = LocalBackend().build_request(gpu_job, "t")["container"]["create_args"]
    assert args[args.index("--device") + 1] == "nvidia.com/gpu=all"


def test_external_images_can_be_refused_by_the_deployment(engine, settings):
    settings.TRAIN_REGISTRY_HOST = "localhost:8000"
    LocalBackend().validate(spec(image="python:3.11", image_digest=""))
    settings.TRAIN_LOCAL_ALLOW_EXTERNAL_IMAGES = False
    assert list(errors_of(LocalBackend(), spec(image="python:3.11", image_digest=""))) == ["image"]
    LocalBackend().validate(spec())  # Train's own registry stays allowed


def test_an_env_value_with_a_line_break_is_a_400_naming_it(engine):
    assert list(errors_of(LocalBackend(), spec(env={"TOKEN": "a\nB=c"}))) == ["env.TOKEN"]


def test_an_explicit_engine_that_is_missing_fails_the_submission_with_the_reason(engine, settings):
    from backends.base import BackendError

    engine(Engine("podman", ok=False, message="podman is not installed"))
    with pytest.raises(BackendError) as excinfo:
        LocalBackend().submit(spec(), "train-2")
    assert excinfo.value.permanent and "podman is not installed" in excinfo.value.message


def test_the_admin_shows_which_engine_runs_local_jobs(staff_client):
    page = staff_client.get("/admin/backends/backendconfig/", follow=True)
    assert page.status_code == 200
    assert "ocal backend: TRAIN_LOCAL_RUNTIME=process: jobs run as host processes" in page.content.decode()
