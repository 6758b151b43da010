"""Every rule of the job body: a 400 naming the field path, with a message, and nothing written."""

from datetime import timedelta

import pytest

from jobs.models import IdempotencyKey, Job, JobEvent
from tests.support.jobs import IMAGE, job_body, queued_tasks

DAY = 24 * 3600
HEX63 = "a" * 63


@pytest.fixture
def data_dir(storage_dir):
    path = storage_dir / "data"
    path.mkdir(exist_ok=True)
    return path


def post(api, caller, body, **headers):
    return api.post("/v1/jobs", body, format="json", **caller.headers, **headers)


def assert_rejected(response, path):
    assert response.status_code == 400, response.content
    errors = response.json()
    assert path in errors, errors
    assert all(isinstance(message, str) and message for message in errors[path])
    assert Job.objects.count() == 0
    assert JobEvent.objects.count() == 0
    assert IdempotencyKey.objects.count() == 0
    assert queued_tasks() == []


def without(field):
    body = job_body()
    del body[field]
    return body


# --- the rules that need no backend ------------------------------------------------------------------

SHAPE_CASES = [
    # name
    (without("name"), "name"),
    (job_body(name=""), "name"),
    (job_body(name="-starts-with-hyphen"), "name"),
    (job_body(name="x" * 129), "name"),
    (job_body(name="a/b"), "name"),
    (job_body(name="a\nb"), "name"),
    (job_body(name=["list"]), "name"),
    # backend (shape)
    (without("backend"), "backend"),
    (job_body(backend=""), "backend"),
    # image (shape)
    (without("image"), "image"),
    (job_body(image=""), "image"),
    (job_body(image="x" * 600), "image"),
    # command
    (without("command"), "command"),
    (job_body(command=[]), "command"),
    (job_body(command=" "), "command"),
    (job_body(command="python train.py"), "command"),
    (job_body(command=[" "]), "command"),
    (job_body(command=[""]), "command[0]"),
    (job_body(command=["python", ""]), "command[1]"),
    (job_body(command=[None]), "command[0]"),
    (job_body(command=[["python"]]), "command[0]"),
    (job_body(command=["x"] * 257), "command"),
    # args
    (job_body(args="--epochs 3"), "args"),
    (job_body(args={"epochs": 3}), "args"),
    (job_body(args=[None]), "args[0]"),
    (job_body(args=["--ok", {"a": 1}]), "args[1]"),
    (job_body(args=[True]), "args[0]"),
    (job_body(args=[["nested"]]), "args[0]"),
    # env
    (job_body(env="A=1"), "env"),
    (job_body(env=["A"]), "env"),
    (job_body(env={"1BAD": "x"}), "env.1BAD"),
    (job_body(env={"BAD-KEY": "x"}), "env.BAD-KEY"),
    (job_body(env={"A=B": "x"}), "env.A=B"),
    (job_body(env={"A B": "x"}), "env.A B"),
    (job_body(env={"A\nB": "x"}), "env.A\nB"),
    (job_body(env={"": "x"}), "env."),
    (job_body(env={"K" * 257: "x"}), "env." + "K" * 257),
    (job_body(env={"A": None}), "env.A"),
    (job_body(env={"A": {"nested": 1}}), "env.A"),
    (job_body(env={"TRAIN_JOB_ID": "job_x"}), "env.TRAIN_JOB_ID"),
    (job_body(env={"TRAIN_ANYTHING": "x"}), "env.TRAIN_ANYTHING"),
    (job_body(env={"STORAGE_MOUNT_0_PATH": "/etc"}), "env.STORAGE_MOUNT_0_PATH"),
    (job_body(env={f"V{i}": "x" for i in range(101)}), "env"),
    # labels
    (job_body(labels="team=nlp"), "labels"),
    (job_body(labels={"Team": "nlp"}), "labels.Team"),
    (job_body(labels={"9team": "nlp"}), "labels.9team"),
    (job_body(labels={"a__b": "x"}), "labels.a__b"),
    (job_body(labels={"team": "NLP"}), "labels.team"),
    (job_body(labels={"team": "a b"}), "labels.team"),
    (job_body(labels={"team": "x" * 64}), "labels.team"),
    (job_body(labels={"k" * 64: "x"}), "labels." + "k" * 64),
    (job_body(labels={f"l{i}": "x" for i in range(51)}), "labels"),
    # storage_mounts (shape)
    (job_body(storage_mounts="file:///data"), "storage_mounts"),
    (job_body(storage_mounts=[{"mode": "ro"}]), "storage_mounts[0].source"),
    (job_body(storage_mounts=[{"source": "data"}]), "storage_mounts[0].source"),
    (job_body(storage_mounts=[{"source": "/srv/data"}]), "storage_mounts[0].source"),
    (job_body(storage_mounts=[{"source": "gs://b/x", "mode": "rx"}]), "storage_mounts[0].mode"),
    (job_body(storage_mounts=[{"source": "gs://b/x", "mode": "RO"}]), "storage_mounts[0].mode"),
    (job_body(storage_mounts=[{"source": "gs://b/x"}] * 33), "storage_mounts"),
    # max_runtime_seconds
    (job_body(max_runtime_seconds=0), "max_runtime_seconds"),
    (job_body(max_runtime_seconds=-1), "max_runtime_seconds"),
    (job_body(max_runtime_seconds=28 * DAY + 1), "max_runtime_seconds"),
    (job_body(max_runtime_seconds=10**30), "max_runtime_seconds"),
    (job_body(max_runtime_seconds="a day"), "max_runtime_seconds"),
    (job_body(max_runtime_seconds=1.5), "max_runtime_seconds"),
    (job_body(max_runtime_seconds=True), "max_runtime_seconds"),
    # resources
    (job_body(resources="big"), "resources"),
    (job_body(resources={"accelerator_count": -1, "accelerator_type": "T4"}), "resources.accelerator_count"),
    (job_body(resources={"accelerator_count": 10**9, "accelerator_type": "T4"}), "resources.accelerator_count"),
    (job_body(resources={"accelerator_count": 1}), "resources.accelerator_type"),
    (job_body(resources={"accelerator_count": 1, "accelerator_type": ""}), "resources.accelerator_type"),
    (job_body(resources={"instance_count": 0}), "resources.instance_count"),
    (job_body(resources={"machine_type": ""}), "resources.machine_type"),
    # backend_options
    (job_body(backend_options=["x"]), "backend_options"),
]


@pytest.mark.parametrize(("body", "path"), [pytest.param(b, p, id=p) for b, p in SHAPE_CASES])
def test_an_invalid_field_is_400_naming_its_path(api, operator, body, path):
    assert_rejected(post(api, operator, body), path)


def test_every_invalid_field_is_reported_at_once(api, operator):
    response = post(api, operator, job_body(name="", command=[], max_runtime_seconds=0))
    assert_rejected(response, "name")
    assert {"name", "command", "max_runtime_seconds"} <= set(response.json())


# --- backend -----------------------------------------------------------------------------------------

def test_an_unknown_backend_is_400_naming_backend(api, operator):
    response = post(api, operator, job_body(backend="mainframe"))
    assert_rejected(response, "backend")
    assert "local" in response.json()["backend"][0]  # the message says what is on offer


def test_a_disabled_backend_is_400_naming_backend(api, operator, settings):
    settings.TRAIN_LOCAL_BACKEND = False
    assert_rejected(post(api, operator, job_body()), "backend")


def test_a_runtime_over_the_backends_maximum_is_400(api, operator):
    assert_rejected(post(api, operator, job_body(max_runtime_seconds=7 * DAY + 1)), "max_runtime_seconds")


# --- image -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("image", [
    pytest.param("UPPER/case", id="upper-case"),
    pytest.param("registry.example.com/acme/app:" + "t" * 129, id="tag-129-chars"),
    pytest.param(f"registry.example.com/acme/app@sha256:{HEX63}", id="digest-63-hex"),
    pytest.param(f"registry.example.com/acme/app@sha256:{'A' * 64}", id="digest-upper-hex"),
    pytest.param("registry.example.com/acme/app@md5:" + "a" * 32, id="md5-digest"),
    pytest.param("localhost:5000/x", id="localhost"),
    pytest.param("127.0.0.1:5000/x", id="loopback-ip"),
    pytest.param("[::1]:5000/x", id="loopback-ipv6"),
    pytest.param("10.0.0.7:5000/x", id="private-ip"),
    pytest.param("169.254.169.254/x", id="metadata-ip"),
    pytest.param("../x", id="dot-dot"),
    pytest.param("%2e%2e/x", id="encoded-dot-dot"),
    pytest.param("\uff47cr.io/x", id="homoglyph-host"),
    pytest.param("acme/app:", id="empty-tag"),
    pytest.param("acme//app", id="empty-component"),
    pytest.param("acme/app latest", id="space"),
])
def test_an_invalid_image_is_400_naming_image(api, operator, image):
    assert_rejected(post(api, operator, job_body(image=image)), "image")


# --- storage mounts against the local backend -------------------------------------------------------

def test_a_gs_mount_on_the_local_backend_is_400_naming_the_source(api, operator, data_dir):
    response = post(api, operator, job_body(storage_mounts=[{"source": "gs://bucket/data"}]))
    assert_rejected(response, "storage_mounts[0].source")
    assert "file://" in response.json()["storage_mounts[0].source"][0]


def test_the_path_names_the_mount_at_fault(api, operator, data_dir):
    mounts = [{"source": f"file://{data_dir}"}, {"source": "s3://bucket/data"}]
    response = post(api, operator, job_body(storage_mounts=mounts))
    assert_rejected(response, "storage_mounts[1].source")
    assert "storage_mounts[0].source" not in response.json()


@pytest.mark.parametrize("source", [
    pytest.param("file:///etc/passwd", id="outside-the-roots"),
    pytest.param("file:///", id="filesystem-root"),
    pytest.param("file://{data}/../../../etc", id="dot-dot-out"),
    pytest.param("file://{data}/../data", id="dot-dot-back-in"),
    pytest.param("file://{data}/%2e%2e/%2e%2e/etc", id="encoded-dot-dot"),
    pytest.param("file://{data}/./x", id="dot"),
    pytest.param("file://{data}//x", id="double-slash"),
    pytest.param("file://{data}/missing", id="nonexistent"),
    pytest.param("file://elsewhere{data}", id="other-host"),
    pytest.param("file:relative/data", id="relative"),
    pytest.param("http://169.254.169.254/latest", id="http-metadata"),
    pytest.param("s3://bucket/../other", id="s3-on-local"),
])
def test_a_mount_the_local_backend_must_not_use_is_400_naming_the_source(api, operator, data_dir, source):
    response = post(api, operator, job_body(storage_mounts=[{"source": source.format(data=data_dir)}]))
    assert_rejected(response, "storage_mounts[0].source")


# --- what is accepted, so the rejections above are about the one field -----------------------------

def test_the_limits_themselves_are_accepted(api, operator, data_dir):
    body = job_body(
        name="n" * 128, env={f"V{i}": "x" for i in range(100)}, labels={f"l{i}": "x" for i in range(50)},
        max_runtime_seconds=7 * DAY, storage_mounts=[{"source": f"file://{data_dir}", "mode": "rw"}],
        args=["--epochs", "3", ""], command=["python", " train.py "],
    )
    response = post(api, operator, body)
    assert response.status_code == 201, response.content
    job = Job.objects.get()
    assert job.storage_mounts == [{"source": f"file://{data_dir}", "mode": "rw"}]
    assert job.command == ["python", " train.py "]  # arguments are passed as given, not trimmed
    assert job.image == IMAGE
    assert job.max_runtime_seconds == timedelta(days=7).total_seconds()


def test_the_resource_limits_themselves_are_accepted(api, operator, fake_backend):
    # A backend that runs on more than one host with GPUs (the local backend runs one instance, here).
    body = job_body(backend="fake", resources={"accelerator_count": 64, "accelerator_type": "T4",
                                               "instance_count": 256})
    response = post(api, operator, body)
    assert response.status_code == 201, response.content
    assert Job.objects.get().resources == {"accelerator_count": 64, "accelerator_type": "T4", "instance_count": 256}


def test_defaults_fill_what_the_body_leaves_out(api, operator, settings):
    response = post(api, operator, job_body())
    assert response.status_code == 201
    data = response.json()
    assert data["max_runtime_seconds"] == settings.TRAIN_DEFAULT_MAX_RUNTIME_SECONDS
    assert data["resources"] == {"accelerator_count": 0, "instance_count": 1}
    assert (data["args"], data["env"], data["labels"], data["storage_mounts"]) == ([], {}, {}, [])


@pytest.mark.parametrize("image", [
    "python", "python:3.12", "docker.io/library/python:3.12", "ghcr.io/acme/app:v1.2_rc-1",
    f"registry.example.com:5000/acme/app@{IMAGE.rsplit('@', 1)[1]}",
])
def test_a_valid_image_reference_is_accepted(api, operator, image):
    response = post(api, operator, job_body(image=image))
    assert response.status_code == 201, response.content
    assert response.json()["image"] == image

