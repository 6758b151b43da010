"""Registry throughput: skopeo push and pull of one large layer through Train and through the reference
Distribution registry (Debian's `docker-registry`), measured in the same run on loopback.

    .venv/bin/python bench/registry.py [--size-mib 1024] [--runs 3] [--workers 2] [--keep DIR]

Each run builds a fresh random layer (so no registry has seen it), pushes it to both registries and
pulls it back into an empty OCI layout, alternating which registry goes first. Before each timed
step the page cache is flushed to disk (`sync`), as in reference/registry.md §4b. Train runs as the
Procfile runs it (gunicorn, sync workers) on SQLite and the filesystem store. Reported: median
seconds and MB/s per operation, Train/reference ratios, and the peak RSS of Train's gateway workers
and its growth over the warmed-up baseline. Prints a table, then one JSON line."""

import argparse
import hashlib
import io
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
MIB = 1024 * 1024
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_blob(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def build_layout(layout: Path, size: int) -> str:
    """An OCI layout `bench:latest` with one uncompressed tar layer of `size` random bytes."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    tmp = layout / "layer.tmp"
    hasher = hashlib.sha256()
    with open(tmp, "wb") as out:
        header = io.BytesIO()
        info = tarfile.TarInfo("payload.bin")
        info.size, info.mtime, info.mode = size, 0, 0o644
        header.write(info.tobuf(format=tarfile.GNU_FORMAT))
        parts = [header.getvalue()]
        for _ in range(size // MIB):
            parts.append(os.urandom(MIB))
            for part in parts:
                hasher.update(part)
                out.write(part)
            parts = []
        padding = b"\0" * ((-size) % 512) + b"\0" * 1024
        hasher.update(padding)
        out.write(padding)
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{hasher.hexdigest()}",
             "size": tmp.stat().st_size}
    tmp.rename(layout / "blobs" / "sha256" / hasher.hexdigest())
    config = {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": [layer["digest"]]}}
    config_descriptor = {"mediaType": "application/vnd.oci.image.config.v1+json",
                         **write_blob(layout, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor, "layers": [layer]}
    descriptor = {"mediaType": OCI_MANIFEST, **write_blob(layout, json.dumps(manifest).encode())}
    descriptor["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [descriptor]}))
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    return layer["digest"]


def wait_http(url: str, proc: subprocess.Popen, accept=(200, 401)) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{proc.args[0]} exited with {proc.returncode}")
        try:
            if requests.get(url, timeout=10).status_code in accept:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


@contextmanager
def process(argv, *, env=None, log: Path):
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_reference(stack: ExitStack, work: Path) -> str:
    binary = shutil.which("docker-registry")
    if binary is None:
        raise SystemExit("docker-registry is not installed (apt-get install docker-registry)")
    port = free_port()
    config = work / "distribution.yml"
    config.write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {work / 'distribution-data'}\n  delete:\n    enabled: true\n"
        f"http:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = stack.enter_context(process([binary, "serve", str(config)], log=work / "distribution.log"))
    wait_http(f"http://127.0.0.1:{port}/v2/", proc)
    return f"127.0.0.1:{port}"


def start_train(stack: ExitStack, work: Path, workers: int):
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="trainsvc.settings", TRAIN_DATA_DIR=str(work / "train-data"),
               DEBUG="0", TRAIN_LOG_LEVEL="WARNING")
    env.pop("DATABASE_URL", None)
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    created = subprocess.run([python, "-c", (
        "import django; django.setup();"
        "from trainsvc.accounts.services import account_create, api_key_create;"
        "print(api_key_create(account=account_create(account_id='bench'), role='admin')[1])")],
        cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    key = created.stdout.strip().splitlines()[-1]
    port = free_port()
    argv = [python, "-m", "gunicorn", "trainsvc.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
            "--timeout", "300", "--no-control-socket"]
    proc = stack.enter_context(process(argv, env=env, log=work / "gunicorn.log"))
    wait_http(f"http://127.0.0.1:{port}/readyz", proc, accept=(200,))
    for _ in range(workers * 4):  # warm every worker (imports, key file, DB connection)
        requests.get(f"http://127.0.0.1:{port}/v2/", auth=("bench", key), timeout=30)
    return f"127.0.0.1:{port}", key, proc


def worker_pids(master: int) -> list[int]:
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[1]) == master:
                pids.append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    return pids


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def skopeo_copy(source: str, destination: str, creds: str | None, *, pull: bool) -> float:
    argv = ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
    if creds:
        argv += ["--src-creds" if pull else "--dest-creds", creds]
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    subprocess.run([*argv, source, destination], check=True, capture_output=True)
    return time.perf_counter() - started


def run_once(index: int, work: Path, size: int, targets: dict) -> dict:
    layout = work / f"layout-{index}"
    build_layout(layout, size)
    order = list(targets) if index % 2 == 0 else list(reversed(targets))
    result = {}
    for name in order:
        host, creds = targets[name]
        repo = "bench/layer" if name == "train" else "ref/layer"
        push = skopeo_copy(f"oci:{layout}:latest", f"docker://{host}/{repo}:run{index}", creds, pull=False)
        pulled = work / f"pulled-{name}-{index}"
        pull = skopeo_copy(f"docker://{host}/{repo}:run{index}", f"oci:{pulled}:latest", creds, pull=True)
        shutil.rmtree(pulled)
        result[name] = {"push": push, "pull": pull}
    shutil.rmtree(layout)
    return result


def report(runs: list[dict], size: int, rss: dict) -> dict:
    summary = {"layer_bytes": size, "runs": runs, "rss": rss}
    lines = [f"{'operation':<22}{'run times (s)':<28}{'median':>10}{'MB/s':>10}"]
    for name in ("train", "reference"):
        for op in ("push", "pull"):
            times = [run[name][op] for run in runs]
            median = statistics.median(times)
            summary[f"{name}_{op}_median_s"] = round(median, 3)
            summary[f"{name}_{op}_mb_s"] = round(size / median / 1e6, 1)
            lines.append(f"{name + ' ' + op:<22}{' / '.join(f'{t:.2f}' for t in times):<28}{median:>10.2f}"
                         f"{size / median / 1e6:>10.1f}")
    for op in ("push", "pull"):
        # Throughput ratio: ≥ 1 means Train is at least as fast as the reference.
        summary[f"ratio_{op}"] = round(summary[f"reference_{op}_median_s"] / summary[f"train_{op}_median_s"], 3)
        lines.append(f"Train/reference {op} throughput: {summary[f'ratio_{op}']:.2f}x")
    lines.append(f"Train gateway worker peak RSS {rss['peak_mib']:.1f} MiB, growth over warm baseline "
                 f"{rss['growth_mib']:.1f} MiB")
    print("\n".join(lines))
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="work directory to use and keep (default: a temporary one)")
    args = parser.parse_args()
    if shutil.which("skopeo") is None:
        raise SystemExit("skopeo is not installed (apt-get install skopeo)")
    work = args.keep or Path(tempfile.mkdtemp(prefix="train-bench-registry-"))
    work.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MIB
    with ExitStack() as stack:
        reference = start_reference(stack, work)
        train, key, master = start_train(stack, work, args.workers)
        pids = worker_pids(master.pid)
        baseline = {pid: memory_kib(pid, "VmRSS") for pid in pids}
        runs = [run_once(i, work, size, {"train": (train, f"bench:{key}"), "reference": (reference, None)})
                for i in range(args.runs)]
        peaks = {pid: memory_kib(pid, "VmHWM") for pid in pids}
    rss = {"peak_mib": max(peaks.values()) / 1024,
           "growth_mib": max(peaks[pid] - baseline[pid] for pid in pids) / 1024}
    summary = report(runs, size, rss)
    print(json.dumps({"bench": "registry", **summary}))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
