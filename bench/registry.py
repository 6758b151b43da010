"""Registry throughput: skopeo push and pull of one large layer, four concurrent pushes and pulls, and
a raw `curl` GET of the large blob, through Train and through the reference Distribution registry
(Debian's `docker-registry`), measured in the same run on loopback.

    .venv/bin/python bench/registry.py [--size-mib 1024] [--runs 3] [--concurrent-mib 256]
        [--concurrent-runs 3] [--web-concurrency 2] [--gzip-layers]

Each run builds a fresh random layer (so no registry has seen it), pushes it to both registries and
pulls it back into an empty OCI layout, alternating which registry goes first. With --gzip-layers the
layers are stored gzip-compressed, so skopeo sends them as they are instead of compressing them on the
client's CPU while the push is timed. Then, in each of
--concurrent-runs rounds, four fresh layers of --concurrent-mib each are pushed to each registry by
four skopeo processes at once, and pulled back the same way (aggregate MB/s over the wall time),
again alternating which registry goes first; reported per round and as medians. Last, `curl` GETs
the last run's layer from each registry and reads the same file locally (`curl file://`: the
physical limit of this machine); with --runs 0 only the concurrent rounds run. Before each timed
step dirty pages are flushed (`sync`). Train runs from the Procfile's `web:` line
(WEB_CONCURRENCY=--workers) on SQLite and the filesystem store. Reported: median seconds and
MB/s per operation, Train/reference ratios, the CPU seconds each registry spent on each round of
concurrent pushes (its processes' user + system time: less sensitive than wall time to whatever
else the machine runs), and the peak RSS of Train's gateway workers over all of it and its growth
over the warmed-up baseline. Prints a table, then one JSON line."""

import argparse
import hashlib
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
import zlib
from contextlib import ExitStack, contextmanager
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.support.procfile import procfile_argv  # noqa: E402 - needs ROOT on the path

CONCURRENCY = 4
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


def build_layout(layout: Path, size: int, *, gzip: bool = False) -> str:
    """An OCI layout `bench:latest` with one tar layer of `size` random bytes: uncompressed (skopeo then
    compresses it on its way to a registry, on the client's CPU), or with `gzip`, stored compressed
    (gzip level 1), so a push sends the layer as it is and the registries' own work is what is timed."""
    (layout / "blobs" / "sha256").mkdir(parents=True)
    tmp = layout / "layer.tmp"
    hasher, diff_id = hashlib.sha256(), hashlib.sha256()
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31) if gzip else None

    def emit(out, data: bytes) -> None:
        diff_id.update(data)
        if compressor is not None:
            data = compressor.compress(data)
        hasher.update(data)
        out.write(data)

    with open(tmp, "wb") as out:
        info = tarfile.TarInfo("payload.bin")
        info.size, info.mtime, info.mode = size, 0, 0o644
        emit(out, info.tobuf(format=tarfile.GNU_FORMAT))
        for _ in range(size // MIB):
            emit(out, os.urandom(MIB))
        emit(out, b"\0" * ((-size) % 512) + b"\0" * 1024)
        if compressor is not None:
            tail = compressor.flush()
            hasher.update(tail)
            out.write(tail)
    media_type = "application/vnd.oci.image.layer.v1.tar" + ("+gzip" if gzip else "")
    layer = {"mediaType": media_type, "digest": f"sha256:{hasher.hexdigest()}", "size": tmp.stat().st_size}
    tmp.rename(layout / "blobs" / "sha256" / hasher.hexdigest())
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{diff_id.hexdigest()}"]}}
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


def start_reference(stack: ExitStack, work: Path) -> tuple[str, subprocess.Popen]:
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
    return f"127.0.0.1:{port}", proc


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
    argv = procfile_argv("web", {"PORT": port, "TRAIN_BIND": "127.0.0.1", "WEB_CONCURRENCY": workers})
    proc = stack.enter_context(process(argv, env=env, log=work / "gunicorn.log"))
    wait_http(f"http://127.0.0.1:{port}/readyz", proc, accept=(200,))
    for _ in range(workers * 4):  # warm every worker (imports, key file, DB connection, first token signature)
        requests.get(f"http://127.0.0.1:{port}/v2/", auth=("bench", key), timeout=30)
        requests.get(f"http://127.0.0.1:{port}/v2/token", auth=("bench", key), timeout=30,
                     params={"service": "train-registry", "scope": "repository:bench/warm:pull"})
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


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of `pid` and of its child processes (gunicorn's workers), live or reaped."""
    total = 0.0
    for one in [pid, *worker_pids(pid)]:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(field) for field in fields[11:15]) / CLOCK_TICKS  # utime stime cutime cstime
    return total


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def skopeo_copy(source: str, destination: str, creds: str | None, *, pull: bool) -> float:
    return run_parallel([skopeo_argv(source, destination, creds, pull=pull)])


def run_once(index: int, work: Path, size: int, targets: dict, *, gzip: bool) -> dict:
    layout = work / f"layout-{index}"
    build_layout(layout, size, gzip=gzip)
    order = list(targets) if index % 2 == 0 else list(reversed(targets))
    result = {}
    for name in order:
        host, creds, _ = targets[name]
        repo = "bench/layer" if name == "train" else "ref/layer"
        push = skopeo_copy(f"oci:{layout}:latest", f"docker://{host}/{repo}:run{index}", creds, pull=False)
        pulled = work / f"pulled-{name}-{index}"
        pull = skopeo_copy(f"docker://{host}/{repo}:run{index}", f"oci:{pulled}:latest", creds, pull=True)
        shutil.rmtree(pulled)
        result[name] = {"push": push, "pull": pull}
    shutil.rmtree(layout)
    return result


def skopeo_argv(source: str, destination: str, creds: str | None, *, pull: bool) -> list[str]:
    argv = ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
    if creds:
        argv += ["--src-creds" if pull else "--dest-creds", creds]
    return [*argv, source, destination]


def run_parallel(commands: list[list[str]]) -> float:
    """Wall seconds for `commands` started together."""
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    procs = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for argv in commands]
    for proc, argv in zip(procs, commands, strict=True):
        if proc.wait() != 0:
            raise SystemExit(f"{' '.join(argv[:2])} failed: {proc.stderr.read().decode()[-500:]}")
    return time.perf_counter() - started


def concurrent_round(index: int, work: Path, size: int, targets: dict, *, gzip: bool) -> dict:
    """CONCURRENCY fresh layers pushed at once to each registry, then pulled back at once; which
    registry goes first alternates between rounds."""
    layouts = [work / f"concurrent-{i}" for i in range(CONCURRENCY)]
    for layout in layouts:
        build_layout(layout, size, gzip=gzip)
    result = {}
    order = list(targets) if index % 2 == 0 else list(reversed(targets))
    for name in order:
        host, creds, server = targets[name]
        repo = "bench/many" if name == "train" else "ref/many"
        refs = [f"docker://{host}/{repo}{i}:round{index}" for i in range(CONCURRENCY)]
        cpu_before = cpu_seconds(server)
        push = run_parallel([skopeo_argv(f"oci:{layout}:latest", ref, creds, pull=False)
                             for layout, ref in zip(layouts, refs, strict=True)])
        push_cpu = cpu_seconds(server) - cpu_before
        pulled = [work / f"pulled-many-{name}-{i}" for i in range(CONCURRENCY)]
        pull = run_parallel([skopeo_argv(ref, f"oci:{out}:latest", creds, pull=True)
                             for ref, out in zip(refs, pulled, strict=True)])
        for out in pulled:
            shutil.rmtree(out)
        result[name] = {"push": push, "pull": pull, "push_cpu_s": push_cpu}
    for layout in layouts:
        shutil.rmtree(layout)
    return result


def curl_mb_s(url: str, *extra: str) -> float:
    subprocess.run(["sync"], check=True)
    argv = ["curl", "-sS", "--fail-with-body", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", *extra, url]
    out = subprocess.run(argv, check=True, capture_output=True, text=True).stdout.split()
    return int(out[0]) / float(out[1]) / 1e6


def pushed_layer(host: str, repo: str, tag: str, headers: dict) -> str:
    """The layer digest as pushed (skopeo compresses an uncompressed layer on its way to a registry)."""
    accept = f"{OCI_MANIFEST}, application/vnd.docker.distribution.manifest.v2+json"
    url = f"http://{host}/v2/{repo}/manifests/{tag}"
    manifest = requests.get(url, timeout=30, headers={**headers, "Accept": accept})
    manifest.raise_for_status()
    return manifest.json()["layers"][0]["digest"]


def curl_round(work: Path, tag: str, train: tuple, reference: str) -> dict:
    """A raw GET of one large blob: from Train, from Distribution, and of Train's stored file itself."""
    host, key = train
    token = requests.get(f"http://{host}/v2/token", auth=("bench", key), timeout=30,
                         params={"service": "train-registry", "scope": "repository:bench/layer:pull"}).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    train_digest = pushed_layer(host, "bench/layer", tag, bearer)
    reference_digest = pushed_layer(reference, "ref/layer", tag, {})
    hex_ = train_digest.removeprefix("sha256:")
    stored = work / "train-data" / "registry" / "blobs" / "sha256" / hex_[:2] / hex_
    return {"train": curl_mb_s(f"http://{host}/v2/bench/layer/blobs/{train_digest}",
                               "-H", f"Authorization: Bearer {token}"),
            "reference": curl_mb_s(f"http://{reference}/v2/ref/layer/blobs/{reference_digest}"),
            "local_file": curl_mb_s(f"file://{stored}")}


def spread(values: list[float]) -> str:
    return f"{min(values):.2f} to {max(values):.2f}" if len(values) > 1 else f"{values[0]:.2f}"


def report(runs: list[dict], size: int, rss: dict, concurrent: list[dict], concurrent_size: int,
           curl: dict | None) -> dict:
    summary = {"layer_bytes": size, "concurrent_layer_bytes": concurrent_size, "runs": runs, "concurrent": concurrent,
               "rss": rss}
    lines = [f"{'operation':<22}{'run times (s)':<34}{'median':>10}{'MB/s':>10}"]
    for name in ("train", "reference") if runs else ():
        for op in ("push", "pull"):
            times = [run[name][op] for run in runs]
            median = statistics.median(times)
            summary[f"{name}_{op}_median_s"] = round(median, 3)
            summary[f"{name}_{op}_mb_s"] = round(size / median / 1e6, 1)
            lines.append(f"{name + ' ' + op:<22}{' / '.join(f'{t:.2f}' for t in times):<34}{median:>10.2f}"
                         f"{size / median / 1e6:>10.1f}")
    for op in ("push", "pull") if runs else ():
        # Throughput ratio: ≥ 1 means Train is at least as fast as the reference.
        summary[f"ratio_{op}"] = round(summary[f"reference_{op}_median_s"] / summary[f"train_{op}_median_s"], 3)
        ratios = [run["reference"][op] / run["train"][op] for run in runs]
        summary[f"ratio_{op}_per_run"] = [round(r, 3) for r in ratios]
        lines.append(f"Train/reference {op} throughput: {summary[f'ratio_{op}']:.2f}x "
                     f"(per run {spread(ratios)})")
    total = CONCURRENCY * concurrent_size
    for name in ("train", "reference"):
        for op in ("push", "pull"):
            times = [round_[name][op] for round_ in concurrent]
            seconds = statistics.median(times)
            summary[f"{name}_concurrent_{op}_median_s"] = round(seconds, 3)
            summary[f"{name}_concurrent_{op}_mb_s"] = round(total / seconds / 1e6, 1)
            lines.append(f"{f'{name} {CONCURRENCY}x {op}':<22}{' / '.join(f'{t:.2f}' for t in times):<34}"
                         f"{seconds:>10.2f}{total / seconds / 1e6:>10.1f}")
    for op in ("push", "pull"):
        # The ratio of medians, and each round's own ratio (both registries, back to back).
        ratio = summary[f"reference_concurrent_{op}_median_s"] / summary[f"train_concurrent_{op}_median_s"]
        ratios = [round_["reference"][op] / round_["train"][op] for round_ in concurrent]
        summary[f"ratio_concurrent_{op}"] = round(ratio, 3)
        summary[f"ratio_concurrent_{op}_per_round"] = [round(r, 3) for r in ratios]
        lines.append(f"Train/reference {CONCURRENCY}x concurrent {op} throughput: {ratio:.2f}x "
                     f"(per round {spread(ratios)}, median {statistics.median(ratios):.2f}x)")
    for name in ("train", "reference"):
        # CPU the registry itself spent on a round of pushes: less sensitive to other load than wall time.
        cpus = [round_[name]["push_cpu_s"] for round_ in concurrent]
        summary[f"{name}_concurrent_push_cpu_median_s"] = round(statistics.median(cpus), 3)
        lines.append(f"{f'{name} {CONCURRENCY}x push CPU':<22}{' / '.join(f'{t:.2f}' for t in cpus):<34}"
                     f"{statistics.median(cpus):>10.2f}")
    if curl is None:
        print("\n".join(lines))
        return summary
    for name, mb_s in curl.items():
        summary[f"curl_get_{name}_mb_s"] = round(mb_s, 1)
        lines.append(f"{'curl GET ' + name:<22}{'':<34}{size / mb_s / 1e6:>10.2f}{mb_s:>10.1f}")
    summary["ratio_curl_get"] = round(curl["train"] / curl["reference"], 3)
    lines.append(f"Train/reference curl GET throughput: {summary['ratio_curl_get']:.2f}x "
                 f"(local file read: {curl['local_file']:.0f} MB/s)")
    lines.append(f"Train gateway worker peak RSS {rss['peak_mib']:.1f} MiB, growth over warm baseline "
                 f"{rss['growth_mib']:.1f} MiB")
    print("\n".join(lines))
    return summary


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--runs", type=int, default=3, help="single push/pull runs (0: concurrent rounds only)")
    parser.add_argument("--concurrent-mib", type=int, default=256, help=f"layer size of each of the {CONCURRENCY}")
    parser.add_argument("--concurrent-runs", type=int, default=3, help=f"rounds of {CONCURRENCY} concurrent pushes")
    parser.add_argument("--web-concurrency", type=int, default=2, help="gateway worker processes (WEB_CONCURRENCY)")
    parser.add_argument("--gzip-layers", action="store_true",
                        help="store the layers gzip-compressed, so skopeo sends them as they are instead of "
                             "compressing them on the client's CPU during the timed push")
    parser.add_argument("--keep", type=Path, help="work directory to use and keep (default: a temporary one)")
    args = parser.parse_args()
    for tool in ("skopeo", "curl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed (apt-get install {tool})")
    work = args.keep or Path(tempfile.mkdtemp(prefix="train-bench-registry-"))
    work.mkdir(parents=True, exist_ok=True)
    size = args.size_mib * MIB
    with ExitStack() as stack:
        reference, reference_proc = start_reference(stack, work)
        train, key, master = start_train(stack, work, args.web_concurrency)
        pids = worker_pids(master.pid)
        baseline = {pid: memory_kib(pid, "VmRSS") for pid in pids}
        targets = {"train": (train, f"bench:{key}", master.pid),
                   "reference": (reference, None, reference_proc.pid)}
        runs = [run_once(i, work, size, targets, gzip=args.gzip_layers) for i in range(args.runs)]
        concurrent = [concurrent_round(i, work, args.concurrent_mib * MIB, targets, gzip=args.gzip_layers)
                      for i in range(args.concurrent_runs)]
        curl = curl_round(work, f"run{args.runs - 1}", (train, key), reference) if runs else None
        peaks = {pid: memory_kib(pid, "VmHWM") for pid in pids}
    rss = {"peak_mib": max(peaks.values()) / 1024,
           "growth_mib": max(peaks[pid] - baseline[pid] for pid in pids) / 1024}
    summary = report(runs, size, rss, concurrent, args.concurrent_mib * MIB, curl)
    print(json.dumps({"bench": "registry", **summary}))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
