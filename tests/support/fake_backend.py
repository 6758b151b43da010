"""A scriptable in-process backend for tests of the layers above the adapters.

Register it with the `fake_backend` fixture; then script it: `FakeBackend.jobs[name] = RemoteStatus(...)`,
`FakeBackend.fail_next["submit"] = BackendError(...)` (once) or `FakeBackend.failing[...]` (until
removed), `FakeBackend.queue_seconds` (what max_queue_seconds answers), and read `FakeBackend.calls`
and `FakeBackend.configs` (the configuration each call was made with). `FakeBackend.pins` is what
`pin_image` answers for an image. `FakeBackend.mirror_to` (a registry's base URL, e.g. a
Distribution from tests/support/distribution.py) makes it a backend whose cloud pulls from there:
Train's images are mirrored to `train/<account>/<path>` with `mirror_credentials` before submission."""

from collections import Counter

import pytest

from backends import registry
from backends.base import Backend, BackendError, RemoteRef, RemoteStatus
from registry.client import Credentials
from registry.mirror import MirrorTarget


class FakeBackend(Backend):
    name = "fake"
    storage_schemes = ("fake",)
    requires_config = False
    poll_interval_bounds = (5, 60)

    jobs: dict[str, RemoteStatus] = {}
    calls: Counter = Counter()
    fail_next: dict[str, BackendError] = {}
    failing: dict[str, BackendError] = {}
    unreachable: set[str] = set()
    canceled: list[str] = []
    configs: list[tuple[str, dict]] = []
    queue_seconds: int = 0
    deadlines: list = []  # the `deadline` of each poll call
    mirror_to: str | None = None  # base URL of the registry the "cloud" pulls from; None: takes Train's images
    mirror_credentials: tuple[str, str] = ("", "")
    specs: list = []  # the JobSpec of each submit call
    pins: dict[str, str] = {}  # image -> the reference pin_image answers (a tag's current digest)

    @classmethod
    def reset(cls):
        cls.jobs, cls.calls, cls.fail_next, cls.unreachable, cls.canceled = {}, Counter(), {}, set(), []
        cls.failing, cls.configs, cls.queue_seconds = {}, [], 0
        cls.deadlines, cls.mirror_to, cls.mirror_credentials, cls.specs = [], None, ("", ""), []
        cls.pins = {}

    def mirror_target(self, repository):
        # The pinned configuration may name the target (a worker process cannot be scripted).
        mirror_to = self.config.get("mirror_to", self.mirror_to)
        if mirror_to is None:
            return None
        scheme, host = mirror_to.split("://", 1)
        username, password = self.config.get("mirror_credentials", self.mirror_credentials)
        return MirrorTarget(registry=host, repository=f"train/{repository}", scheme=scheme, label="the test registry",
                            credentials=lambda: Credentials(username, password))

    def pin_image(self, image):
        self.calls["pin_image"] += 1
        return self.pins.get(image, image)

    def _maybe_fail(self, op):
        self.calls[op] += 1
        self.configs.append((op, dict(self.config)))
        if op in self.fail_next:
            raise self.fail_next.pop(op)
        if op in self.failing:
            raise self.failing[op]

    def max_queue_seconds(self, spec):
        return self.queue_seconds

    def build_request(self, spec, name):
        return {"name": name, "argv": [*spec.command, *spec.args]}

    def submit(self, spec, name):
        self._maybe_fail("submit")
        self.specs.append(spec)
        self.calls[f"create:{name}"] += int(name not in self.jobs)
        self.jobs.setdefault(name, RemoteStatus(status="PENDING", remote_status="Queued"))
        return RemoteRef(name=name, remote_id=f"remote-{name}")

    def find(self, name, *, job_id):
        self._maybe_fail("find")
        return RemoteRef(name=name, remote_id=f"remote-{name}") if name in self.jobs else None

    def poll(self, refs, *, since=None, deadline=None):
        self._maybe_fail("poll")
        self.deadlines.append(deadline)
        return {ref: self.jobs[ref.name] for ref in refs if ref.name in self.jobs and ref.name not in self.unreachable}

    def cancel(self, ref):
        self._maybe_fail("cancel")
        self.canceled.append(ref.name)

    def logs(self, ref, *, tail=100):
        self._maybe_fail("logs")
        return [f"line {i}" for i in range(3)][-tail:]

    def console_url(self, ref):
        return f"https://console.example.com/{ref.name}"


@pytest.fixture
def fake_backend(monkeypatch):
    FakeBackend.reset()
    monkeypatch.setitem(registry.BACKEND_CLASSES, "fake", "tests.support.fake_backend.FakeBackend")
    return FakeBackend
