"""Slow pushes through `make run` as shipped: N image pushes with a large layer each, every one
throttled to a slow uplink, while a client polls `GET /v1/jobs` and `/healthz`; then Ctrl-C.

    .venv/bin/python bench/slow_push.py [--pushes 3] [--size-mib 45] [--rate-mb-s 1.0]

Does what `make run` does, on a fresh TRAIN_DATA_DIR and a free port: migrate, setup_schedules,
demo_setup, then `honcho start -f Procfile` (the Procfile's own command lines, SQLite, the local
backend). Each push uploads one random layer with a chunked PATCH paced at --rate-mb-s, then its
config and manifest, as docker does. Reported: each push's duration and result, the latency of
every /v1 and /healthz probe during the pushes (max, p50, p99), and how long honcho took to stop
after SIGINT to its process group (Ctrl-C in its terminal) and whether it had to SIGKILL anything.
Prints a table and one JSON line."""

import argparse
import hashlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
PIECE_BYTES = 64 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def paced(data: bytes, rate_bytes_s: float):
    """`data` in 64 KiB pieces, never ahead of `rate_bytes_s` since the first piece."""
    started = time.monotonic()
    for offset in range(0, len(data), PIECE_BYTES):
        ahead = offset / rate_bytes_s - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)
        yield data[offset:offset + PIECE_BYTES]


def push_blob(base, auth, name, data, rate=None) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    started = requests.post(f"{base}/v2/{name}/blobs/uploads/", auth=auth, timeout=60)
    started.raise_for_status()
    body = paced(data, rate) if rate else data
    patched = requests.patch(base + started.headers["Location"], data=body, auth=auth, timeout=3600)
    patched.raise_for_status()
    finished = requests.put(base + patched.headers["Location"], params={"digest": digest}, auth=auth, timeout=600)
    finished.raise_for_status()
    return digest


def push_image(base, auth, index, size, rate, results):
    name, started = f"demo/slow{index}", time.monotonic()
    try:
        layer = os.urandom(size)
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": index}).encode()
        manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                    "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                               "digest": push_blob(base, auth, name, config), "size": len(config)},
                    "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                                "digest": push_blob(base, auth, name, layer, rate), "size": size}]}
        response = requests.put(f"{base}/v2/{name}/manifests/v1", data=json.dumps(manifest), auth=auth, timeout=60,
                                headers={"Content-Type": OCI_MANIFEST})
        results[index] = {"status": response.status_code, "seconds": round(time.monotonic() - started, 1)}
    except requests.RequestException as exc:
        results[index] = {"status": f"error: {exc}"[:200], "seconds": round(time.monotonic() - started, 1)}


def probe(base, headers, pushes, latencies):
    while any(push.is_alive() for push in pushes):
        for path, kind in (("/v1/jobs", "v1"), ("/healthz", "healthz")):
            sent = time.monotonic()
            try:
                ok = requests.get(base + path, headers=headers, timeout=60).status_code == 200
            except requests.RequestException:
                ok = False
            latencies[kind].append((time.monotonic() - sent, ok))
        time.sleep(0.5)


def make_run(work: Path, port: int):
    """`make run`'s steps on a private data directory; returns (honcho process, demo API key)."""
    env = dict(os.environ, TRAIN_DATA_DIR=str(work), PORT=str(port),
               PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    for name in ("DATABASE_URL", "DJANGO_SETTINGS_MODULE"):
        env.pop(name, None)
    for step in (["migrate", "--noinput"], ["setup_schedules"], ["demo_setup"]):
        subprocess.run([sys.executable, "manage.py", *step], cwd=ROOT, env=env, check=True, capture_output=True)
    honcho = subprocess.Popen([str(Path(sys.executable).parent / "honcho"), "start", "-f", "Procfile", "-p", str(port)],
                              cwd=ROOT, env=env, stdout=open(work / "honcho.log", "wb"), stderr=subprocess.STDOUT,
                              start_new_session=True)
    return honcho, (work / "demo-api-key").read_text().strip()


def wait_ready(base, honcho):
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if honcho.poll() is not None:
            raise SystemExit("honcho exited early")
        try:
            if requests.get(f"{base}/readyz", timeout=10).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise SystemExit("the gateway did not answer /readyz")


def ctrl_c(honcho, log: Path) -> dict:
    started = time.monotonic()
    os.killpg(honcho.pid, signal.SIGINT)  # what the terminal sends to its foreground process group
    try:
        honcho.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(honcho.pid, signal.SIGKILL)
        honcho.wait()
    text = log.read_text(errors="replace")
    return {"stop_seconds": round(time.monotonic() - started, 2), "sigkill_needed": "SIGKILL" in text}


def summarize(latencies) -> dict:
    out = {}
    for kind, samples in latencies.items():
        times = sorted(t for t, _ in samples)
        out[kind] = {"requests": len(samples), "failed": sum(1 for _, ok in samples if not ok),
                     "max_s": round(max(times), 3), "p50_s": round(statistics.median(times), 3),
                     "p99_s": round(times[min(len(times) - 1, int(len(times) * 0.99))], 3)}
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pushes", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=45)
    parser.add_argument("--rate-mb-s", type=float, default=1.0)
    args = parser.parse_args()
    work, port = Path(tempfile.mkdtemp(prefix="train-bench-slow-push-")), free_port()
    base = f"http://127.0.0.1:{port}"
    honcho, key = make_run(work, port)
    try:
        wait_ready(base, honcho)
        auth, headers = ("demo", key), {"x-api-key": key, "x-selected-account-id": "demo"}
        results, latencies = {}, {"v1": [], "healthz": []}
        pushes = [threading.Thread(target=push_image, args=(base, auth, i, args.size_mib * MIB,
                                                            args.rate_mb_s * 1e6, results))
                  for i in range(args.pushes)]
        for push in pushes:
            push.start()
        probe(base, headers, pushes, latencies)
        for push in pushes:
            push.join()
    finally:
        stopped = ctrl_c(honcho, work / "honcho.log")
    summary = {"pushes": [results[i] for i in sorted(results)], "probes": summarize(latencies), "ctrl_c": stopped,
               "size_mib": args.size_mib, "rate_mb_s": args.rate_mb_s}
    for index, result in enumerate(summary["pushes"]):
        print(f"push {index}: {args.size_mib} MiB at {args.rate_mb_s} MB/s -> {result['status']} "
              f"in {result['seconds']} s")
    for kind, stats in summary["probes"].items():
        print(f"{kind:<8} {stats['requests']} requests, {stats['failed']} failed, max {stats['max_s']} s, "
              f"p50 {stats['p50_s']} s, p99 {stats['p99_s']} s")
    print(f"Ctrl-C: honcho stopped in {stopped['stop_seconds']} s, SIGKILL needed: {stopped['sigkill_needed']}")
    print(json.dumps({"bench": "slow_push", **summary}))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
