"""API throughput: Train's authenticated job endpoints against a bare Django+DRF endpoint, same run.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/train_bench .venv/bin/python bench/api.py

Needs `wrk` (Debian package). Starts the gateway from the Procfile's `web:` line on loopback with bench/settings.py,
which adds `/bench/bare` (no auth, one SELECT 1) as the baseline, then runs wrk against each endpoint.
Prints a table and one JSON line. Nothing here asserts: compare the ratio to the baseline.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.procfile import procfile_argv  # noqa: E402 - needs ROOT on the path

DURATION_SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "8"))
POST_BODY = json.dumps({"name": "bench", "backend": "local", "image": "python:3.11", "command": ["true"]})


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env, *args) -> str:
    out = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True,
                         capture_output=True, text=True)
    return out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""


def wrk(url: str, headers: dict, *, method="GET", body=None) -> dict:
    script = None
    args = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{DURATION_SECONDS}s", "--latency"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if method != "GET":
        script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
        script.write(f'wrk.method = "{method}"\nwrk.body = {json.dumps(body)}\n'
                     'wrk.headers["Content-Type"] = "application/json"\n')
        script.close()
        args += ["-s", script.name]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    if script:
        os.unlink(script.name)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1])
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)

    def latency(pct):
        value, unit = re.search(rf"\s{pct}%\s+([\d.]+)(us|ms|s)", out).groups()
        return float(value) * {"us": 0.001, "ms": 1, "s": 1000}[unit]

    return {"rps": round(rps), "p50_ms": latency(50), "p99_ms": latency(99),
            "errors": int(non2xx[1]) if non2xx else 0}


def main():
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed (apt-get install wrk)")
    data_dir = tempfile.mkdtemp(prefix="train-bench-api-")
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="bench.settings", TRAIN_DATA_DIR=data_dir, DEBUG="0",
               TRAIN_LOG_LEVEL="WARNING")
    manage(env, "migrate", "--noinput")
    manage(env, "create_account", "bench")
    key = manage(env, "create_api_key", "bench", "--role", "member")
    port = free_port()
    server = subprocess.Popen(procfile_argv("web", {"PORT": port, "TRAIN_BIND": "127.0.0.1"}),
                              cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    auth = {"x-api-key": key, "x-selected-account-id": "bench"}
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"{base}/readyz", timeout=2)  # noqa: S310 (loopback http)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        request = urllib.request.Request(f"{base}/v1/jobs", data=POST_BODY.encode(), method="POST",  # noqa: S310
                                         headers={**auth, "content-type": "application/json"})
        job_id = json.load(urllib.request.urlopen(request))["id"]  # noqa: S310 (loopback http)
        cases = [
            ("bare Django+DRF GET (baseline)", wrk(f"{base}/bench/bare", {})),
            ("GET /v1/jobs/{id}", wrk(f"{base}/v1/jobs/{job_id}", auth)),
            ("GET /v1/jobs (page of 50)", wrk(f"{base}/v1/jobs", auth)),
            ("POST /v1/jobs", wrk(f"{base}/v1/jobs", auth, method="POST", body=POST_BODY)),
        ]
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(data_dir, ignore_errors=True)
    baseline = cases[0][1]["rps"]
    engine = "postgresql" if os.environ.get("DATABASE_URL", "").startswith("postgres") else "sqlite"
    print(f"gunicorn 2 sync workers, wrk -c{CONNECTIONS} -d{DURATION_SECONDS}s, database: {engine}")
    print(f"{'endpoint':34} {'req/s':>7} {'p50 ms':>8} {'p99 ms':>8} {'vs bare':>8} {'errors':>7}")
    for name, result in cases:
        print(f"{name:34} {result['rps']:>7} {result['p50_ms']:>8.2f} {result['p99_ms']:>8.2f} "
              f"{result['rps'] / baseline:>8.2f} {result['errors']:>7}")
    print(json.dumps({"bench": "api", "database": engine, "connections": CONNECTIONS,
                      "results": {name: result for name, result in cases}}))


if __name__ == "__main__":
    main()
