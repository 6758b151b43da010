"""Local jobs in containers, end to end with a real podman and a real docker daemon: skopeo pushes a tiny
busybox image to Train's registry (a gateway from the Procfile), a member submits `local` jobs through
the REST API, and a real worker runs them in containers of the pinned digest, pulled with a
one-repository pull token; podman's image store is pruned of what no job wants.

Every test runs once per engine. One gateway and one worker serve each engine's tests; the test that
kills the worker runs last."""

import json
import os
import signal
import subprocess
import uuid
from contextlib import ExitStack

import pytest
import requests
from django.conf import settings

from backends.local_engine import podman_environment
from backends.local_images import image_digests, local_images_prune
from jobs.image_store import local_images_tidy
from jobs.models import TERMINAL_STATUSES, Job, JobEvent
from tests.conftest import IN_CI, require_tool
from tests.support.busybox_image import build_busybox_image
from tests.support.processes import free_port, gateway, qcluster, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

REPOSITORY = "acme/box"


def require_docker_daemon() -> None:
    require_tool("docker")
    done = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                          timeout=60)
    if done.returncode != 0:
        message = f"no docker daemon answers (.ci/run starts one): {done.stderr.strip()[-300:]}"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module", params=["podman", "docker"])
def stack(request, django_db_setup, tmp_path_factory):
    engine = request.param
    for tool in ("skopeo", "busybox", "runc"):
        require_tool(tool)
    if engine == "podman":
        require_tool("podman")
    else:
        require_docker_daemon()
    tmp = tmp_path_factory.mktemp(f"containers-{engine}")
    port = free_port()
    host = f"127.0.0.1:{port}"
    env = {"TRAIN_LOCAL_RUNTIME": engine, "TRAIN_REGISTRY_HOST": host}
    with ExitStack() as stack:
        base, _ = stack.enter_context(gateway(tmp, port=port, **env))
        worker = stack.enter_context(qcluster(tmp, **env))
        yield {"base": base, "host": host, "env": env, "worker": worker, "tmp": tmp, "engine": engine}


def push(stack, member, layout, tag: str) -> None:
    done = subprocess.run(
        [require_tool("skopeo"), "copy", "--dest-tls-verify=false", "--dest-creds", f"acme:{member.plaintext}",
         f"oci:{layout}:{tag}", f"docker://{stack['host']}/{REPOSITORY}:{tag}"],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def submit(stack, caller, command, *, expect=201, **fields) -> dict:
    body = {"name": "in-a-container", "backend": "local", "image": f"{stack['host']}/{REPOSITORY}:v1",
            "command": command, "max_runtime_seconds": 300, **fields}
    response = requests.post(f"{stack['base']}/v1/jobs", json=body, headers=caller.http_headers, timeout=30)
    assert response.status_code == expect, response.text
    return response.json()


def job(stack, caller, job_id) -> dict:
    return requests.get(f"{stack['base']}/v1/jobs/{job_id}", headers=caller.http_headers, timeout=30).json()


def wait_for(stack, caller, job_id, statuses, timeout=120) -> dict:
    def reached():
        body = job(stack, caller, job_id)
        return body if body["status"] in statuses else None

    return wait_until(reached, timeout=timeout, interval=0.5, message=f"{job_id} to reach {statuses}")


def log_lines(stack, caller, job_id) -> list[str]:
    response = requests.get(f"{stack['base']}/v1/jobs/{job_id}/logs", headers=caller.http_headers, timeout=30)
    return response.json()["lines"]


def engine_run(stack, *args: str) -> subprocess.CompletedProcess:
    """The module's engine, as Train drives it (podman with Train's own configuration and store)."""
    env = {**os.environ, **(podman_environment() if stack["engine"] == "podman" else {})}
    return subprocess.run([stack["engine"], *args], env=env, capture_output=True, text=True, timeout=60)


def container_exists(stack, name: str) -> bool:
    return engine_run(stack, "container", "inspect", name).returncode == 0


def mount_dir(storage_dir, mode: int):
    path = storage_dir / f"mount-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    path.chmod(mode)
    return path


def test_a_pushed_image_runs_isolated_in_a_container_of_its_pinned_digest(stack, member, storage_dir, tmp_path):
    layout = tmp_path / "layout"
    first = build_busybox_image(layout, "v1", marker="image one")
    push(stack, member, layout, "v1")
    data = mount_dir(storage_dir, 0o755)
    (data / "input.txt").write_text("hello from the mount\n")
    (data / "input.txt").chmod(0o644)
    script = (
        'cat /etc/train-image; echo "uid=$(id -u)"; echo "mount=$STORAGE_MOUNT_0_PATH"; '
        "cat $STORAGE_MOUNT_0_PATH/input.txt; "
        "if touch $STORAGE_MOUNT_0_PATH/written 2>/dev/null; then echo writable; else echo read-only; fi; "
        f"if ls {settings.TRAIN_DATA_DIR} >/dev/null 2>&1; then echo sees-train-data; else echo no-train-data; fi; "
        "echo net=$(ls /sys/class/net); "
        "echo memory=$(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
    )
    pinned = submit(stack, member, ["sh", "-c", script], resources={"machine_type": "1cpu-64mb"},
                    storage_mounts=[{"source": f"file://{data}", "mode": "ro"}])
    assert pinned["image_digest"] == first

    # The tag moves after the submission: the job still runs what it was submitted with.
    second = build_busybox_image(layout, "v1", marker="image two")
    push(stack, member, layout, "v1")
    later = submit(stack, member, ["cat", "/etc/train-image"])
    assert later["image_digest"] == second != first

    done = wait_for(stack, member, pinned["id"], TERMINAL_STATUSES)
    assert done["status"] == "COMPLETED", (done["status_message"], done["sub_status"])
    assert done["sub_status"] == "exited"
    lines = log_lines(stack, member, pinned["id"])
    assert lines[0] == "image one"  # a file only the pinned image has
    uid = int(lines[1].removeprefix("uid="))
    assert uid != 0  # the image names no user: not root inside
    assert lines[2:] == ["mount=/mnt/train/mount0", "hello from the mount", "read-only", "no-train-data", "net=lo",
                         f"memory={64 * 2**20}"]
    assert not (data / "written").exists()
    assert wait_for(stack, member, later["id"], TERMINAL_STATUSES)["status"] == "COMPLETED"
    assert log_lines(stack, member, later["id"]) == ["image two"]

    name = Job.objects.get(pk=pinned["id"]).remote_name
    wait_until(lambda: not container_exists(stack, name), timeout=60, message="the container to be removed")

    backends = requests.get(f"{stack['base']}/v1/backends", headers=member.http_headers, timeout=30).json()
    health = next(b for b in backends if b["name"] == "local")["health"]
    assert (health["runtime"], health["ok"], health["runs_images"]) == (stack["engine"], True, True)

    if not health["gpus"]:
        refused = submit(stack, member, ["true"], expect=400,
                         resources={"accelerator_type": "NVIDIA_TESLA_T4", "accelerator_count": 1})
        assert "resources.accelerator_count" in json.dumps(refused)


def test_cancel_stops_with_sigterm_expiry_stops_and_a_failed_pull_says_why(stack, member, tmp_path):
    layout = tmp_path / "layout"
    build_busybox_image(layout, "v1", marker="image one")
    push(stack, member, layout, "v1")
    waiting = submit(stack, member, ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo waiting; "
                                                 "while true; do sleep 1; done"])
    slow = submit(stack, member, ["sleep", "300"], max_runtime_seconds=3)
    missing = submit(stack, member, ["true"], image="registry.invalid/train/none:v1")

    wait_until(lambda: "waiting" in log_lines(stack, member, waiting["id"]), timeout=120,
               message="the job to run")
    assert requests.post(f"{stack['base']}/v1/jobs/{waiting['id']}/cancel", headers=member.http_headers,
                         timeout=30).status_code == 202
    assert wait_for(stack, member, waiting["id"], TERMINAL_STATUSES)["status"] == "CANCELED"
    assert "got TERM" in log_lines(stack, member, waiting["id"])

    assert wait_for(stack, member, slow["id"], TERMINAL_STATUSES)["status"] == "EXPIRED"
    failed = wait_for(stack, member, missing["id"], TERMINAL_STATUSES)
    assert failed["status"] == "FAILED"
    assert "Could not pull docker.io" not in failed["status_message"]
    assert "Could not pull registry.invalid/train/none:v1" in failed["status_message"], failed


def store_digests() -> set[str]:
    """The digests of the images in Train's podman store."""
    done = subprocess.run(["podman", "images", "--format", "json"], env={**os.environ, **podman_environment()},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return {digest for image in json.loads(done.stdout or "[]") for digest in image_digests(image)}


def test_the_prune_frees_images_no_job_wants_but_never_one_a_container_uses(stack, member, tmp_path, settings):
    settings.TRAIN_LOCAL_RUNTIME = stack["engine"]  # this process prunes the store the module's worker uses
    layout = tmp_path / "layout"
    digest = build_busybox_image(layout, "v1", marker="prune me")
    push(stack, member, layout, "v1")
    if stack["engine"] == "docker":  # the daemon's store is the host's: never pruned
        done = submit(stack, member, ["true"])
        assert wait_for(stack, member, done["id"], TERMINAL_STATUSES)["status"] == "COMPLETED"
        assert "docker" in local_images_prune(keep_digests=set()).skipped
        assert engine_run(stack, "image", "inspect", f"{stack['host']}/{REPOSITORY}@{digest}").returncode == 0
        return
    running = submit(stack, member, ["sleep", "300"])
    wait_for(stack, member, running["id"], {"IN_PROGRESS"})

    assert local_images_prune(keep_digests=set()).in_use >= 1
    assert digest in store_digests(), "a running job's image stays"
    requests.post(f"{stack['base']}/v1/jobs/{running['id']}/cancel", headers=member.http_headers, timeout=30)
    assert wait_for(stack, member, running["id"], TERMINAL_STATUSES)["status"] == "CANCELED"
    name = Job.objects.get(pk=running["id"]).remote_name
    wait_until(lambda: not container_exists(stack, name), timeout=60, message="the container to be removed")

    assert local_images_tidy()["kept"] >= 1, "a job that just finished still wants its image"
    assert digest in store_digests()
    for name in ("localhost/extra:one", "localhost/extra:two"):  # podman removes these by name only
        assert engine_run(stack, "tag", f"{stack['host']}/{REPOSITORY}@{digest}", name).returncode == 0
    report = local_images_prune(keep_digests=set())
    assert report.removed and digest not in store_digests(), report

    again = submit(stack, member, ["cat", "/etc/train-image"])  # pulled again
    assert wait_for(stack, member, again["id"], TERMINAL_STATUSES)["status"] == "COMPLETED"
    assert log_lines(stack, member, again["id"]) == ["prune me"]


def test_a_worker_and_supervisor_killed_mid_run_lead_to_exactly_one_container_run(stack, member, storage_dir,
                                                                                  tmp_path):
    """Runs last: it kills the module's worker and finishes with a new one."""
    layout = tmp_path / "layout"
    build_busybox_image(layout, "v1", marker="image one")
    push(stack, member, layout, "v1")
    scratch = mount_dir(storage_dir, 0o1777)
    running = submit(stack, member, ["sh", "-c", "echo run >> $STORAGE_MOUNT_0_PATH/runs; sleep 4; echo done"],
                     storage_mounts=[{"source": f"file://{scratch}", "mode": "rw"}])
    wait_until((scratch / "runs").exists, timeout=120, message="the container to start")

    os.killpg(stack["worker"].pid, signal.SIGKILL)
    remote_name = Job.objects.get(pk=running["id"]).remote_name
    started = json.loads((settings.TRAIN_LOCAL_RUN_DIR / remote_name / "started").read_text())
    os.kill(started["supervisor_pid"], signal.SIGKILL)  # the container outlives its supervisor too

    with qcluster(stack["tmp"], **stack["env"]):
        done = wait_for(stack, member, running["id"], TERMINAL_STATUSES)
    assert done["status"] == "COMPLETED", (done["status_message"], done["sub_status"])
    assert (scratch / "runs").read_text() == "run\n"
    assert log_lines(stack, member, running["id"]) == ["done"]
    assert JobEvent.objects.filter(job_id=running["id"], to_status__in=TERMINAL_STATUSES).count() == 1
