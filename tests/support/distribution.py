"""Debian's Distribution registry (`docker-registry`, the reference implementation) as a real peer:
a mirror target that checks real credentials."""

import base64
import os
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import requests

from tests.conftest import require_tool
from tests.support.processes import free_port, wait_until


def bcrypt_line(username: str, password: str) -> str:
    import bcrypt

    return f"{username}:{bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()}\n"


@contextmanager
def distribution(work: Path, *, users: dict[str, str] | None = None):
    """A Distribution registry on a free loopback port; with `users`, htpasswd (Basic) auth. Yields its
    base URL."""
    work.mkdir(parents=True, exist_ok=True)
    auth = ""
    if users:
        htpasswd = work / "htpasswd"
        htpasswd.write_text("".join(bcrypt_line(user, password) for user, password in users.items()))
        auth = f"auth:\n  htpasswd:\n    realm: distribution\n    path: {htpasswd}\n"
    with distribution_process(work, auth=auth) as base:
        yield base


@contextmanager
def distribution_process(work: Path, *, auth: str = "", port: int | None = None):
    """Run Debian's Distribution on loopback `port` (a free one by default) with the YAML `auth` block,
    storing under `work`; yields its base URL once `/v2/` answers."""
    binary = require_tool("docker-registry")
    work.mkdir(parents=True, exist_ok=True)
    port = port or free_port()
    config = work / "config.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: false\n"
        f"storage:\n  filesystem:\n    rootdirectory: {work / 'data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n{auth}"
    )
    log = open(work / "distribution.log", "ab")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True, env={**os.environ, "OTEL_TRACES_EXPORTER": "none"})
    base = f"http://127.0.0.1:{port}"

    def ready():
        if proc.poll() is not None:
            raise AssertionError(f"docker-registry exited: {(work / 'distribution.log').read_text()[-2000:]}")
        try:
            return requests.get(f"{base}/v2/", timeout=5).status_code in (200, 401)
        except requests.RequestException:
            return False

    try:
        wait_until(ready, timeout=30, message="docker-registry to answer")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def basic_header(username: str, password: str) -> dict:
    return {"Authorization": "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()}


def fetch(base: str, path: str, *, auth=None, headers=None, method="GET", deadline: float = 30):
    """A request to the registry, retried briefly while it starts."""
    end = time.monotonic() + deadline
    while True:
        try:
            return requests.request(method, base + path, auth=auth, headers=headers or {}, timeout=30)
        except requests.ConnectionError:
            if time.monotonic() > end:
                raise
            time.sleep(0.2)
