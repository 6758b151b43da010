"""Mirroring throughput: Train's copier against `skopeo copy` between the same two registries.

    .venv/bin/python bench/mirror.py [--big-mib 1024] [--layers-mib 2048] [--keep DIR]

Train (as the Procfile runs it, on SQLite and the filesystem store) and Debian's Distribution registry
run on loopback. Two images are pushed to Train with skopeo: one single layer of --big-mib, and ten
layers adding up to --layers-mib. Each is then copied from Train to Distribution twice, into fresh
repositories: once by `manage.py registry_mirror` (Train's copier, reading Train's store) and once by
`skopeo copy docker://train/… docker://distribution/…`, alternating which goes first. Then one layer of
the ten-layer image changes and it is mirrored again: only that layer should move. Reported: seconds,
MB/s, the Train/skopeo time ratio (≥ 1 means Train is no slower), bytes sent by the incremental
mirror, and the copier's peak RSS over its baseline. Prints a table, then one JSON line."""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.registry import MIB, ROOT, build_layout, start_reference, start_train
from tests.registry.ocilayout import build_image


def skopeo(source: str, destination: str, creds: str) -> float:
    argv = ["skopeo", "copy", "--quiet", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", creds,
            source, destination]
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def push(layout: Path, train: str, creds: str, repo: str) -> None:
    subprocess.run(["skopeo", "copy", "--quiet", "--dest-tls-verify=false", "--dest-creds", creds,
                    f"oci:{layout}:latest", f"docker://{train}/{repo}"], check=True, capture_output=True)


def train_mirror(env: dict, image: str, target: str) -> tuple[float, int]:
    """Seconds and peak RSS (KiB) of one `manage.py registry_mirror` run."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "manage.py", "registry_mirror", image, "--to", target], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    output = proc.stdout.read().decode()
    if status != 0:
        raise SystemExit(f"registry_mirror failed: {output}")
    return elapsed, usage.ru_maxrss


def baseline_rss(env: dict) -> int:
    """Peak RSS (KiB) of a Django process that imports the copier and does nothing else."""
    code = "import django; django.setup(); import registry.mirror"
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    _, _, usage = os.wait4(proc.pid, 0)
    return usage.ru_maxrss


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--layers-mib", type=int, default=2048)
    parser.add_argument("--keep", type=Path)
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="train-bench-mirror-"))
    work.mkdir(parents=True, exist_ok=True)
    rows, summary = [], {"bench": "mirror"}
    with ExitStack() as stack:
        reference = start_reference(stack, work)
        train, key, _master = start_train(stack, work, 2)
        creds = f"bench:{key}"
        env = dict(os.environ, DJANGO_SETTINGS_MODULE="trainsvc.settings", TRAIN_DATA_DIR=str(work / "train-data"),
                   DEBUG="0", TRAIN_LOG_LEVEL="WARNING")
        env.pop("DATABASE_URL", None)
        big = work / "big"
        build_layout(big, args.big_mib * MIB)
        push(big, train, creds, "bench/big:v1")
        layered = work / "layered"
        build_image(layered, "latest", seed=1, layers=10, layer_bytes=args.layers_mib * MIB // 10)
        push(layered, train, creds, "bench/layered:v1")
        sizes = {"big": args.big_mib * MIB, "layered": args.layers_mib * MIB}
        base_rss = baseline_rss(env)
        peak = 0
        for index, name in enumerate(("big", "layered")):
            image = f"bench/{name}:v1"
            order = ["train", "skopeo"] if index % 2 == 0 else ["skopeo", "train"]
            times = {}
            for tool in order:
                if tool == "train":
                    times[tool], rss = train_mirror(env, image, f"http://{reference}/train/{name}")
                    peak = max(peak, rss)
                else:
                    times[tool] = skopeo(f"docker://{train}/{image}", f"docker://{reference}/skopeo/{name}", creds)
            ratio = times["skopeo"] / times["train"]
            summary[name] = {"bytes": sizes[name], "train_s": round(times["train"], 2),
                             "skopeo_s": round(times["skopeo"], 2), "ratio": round(ratio, 3)}
            rows.append((name, times["train"], times["skopeo"], sizes[name], ratio))
        # One layer changes: a new image sharing nine layers with the mirrored one.
        summary["incremental"] = incremental(work, env, train, creds, reference, layered, args.layers_mib * MIB // 10)
        peak = max(peak, summary["incremental"].pop("rss"))
    summary["rss_growth_mib"] = round((peak - base_rss) / 1024, 1)
    print(f"{'image':<10}{'train s':>10}{'skopeo s':>10}{'train MB/s':>12}{'ratio':>8}")
    for name, train_s, skopeo_s, size, ratio in rows:
        print(f"{name:<10}{train_s:>10.2f}{skopeo_s:>10.2f}{size / train_s / 1e6:>12.1f}{ratio:>8.2f}")
    inc = summary["incremental"]
    print(f"incremental re-mirror: {inc['seconds']:.2f} s, {inc['blobs_sent']} blob(s) and {inc['bytes_sent']} bytes "
          f"sent; the changed layer, as stored, is {inc['layer_bytes']} bytes")
    print(f"copier peak RSS growth over an idle Django process: {summary['rss_growth_mib']} MiB")
    print(json.dumps(summary))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


def incremental(work, env, train, creds, reference, layered, layer_bytes) -> dict:
    """Push a copy of the ten-layer image with its last layer replaced, and mirror it where the first
    copy went: nine layers are at the target already."""
    import hashlib

    index = json.loads((layered / "index.json").read_text())
    manifest_digest = index["manifests"][-1]["digest"].split(":", 1)[1]
    manifest = json.loads((layered / "blobs" / "sha256" / manifest_digest).read_text())
    data = os.urandom(layer_bytes)
    digest = hashlib.sha256(data).hexdigest()
    (layered / "blobs" / "sha256" / digest).write_bytes(data)
    manifest["layers"][-1] = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{digest}",
                              "size": len(data)}
    body = json.dumps(manifest).encode()
    new_digest = hashlib.sha256(body).hexdigest()
    (layered / "blobs" / "sha256" / new_digest).write_bytes(body)
    index["manifests"] = [{"mediaType": manifest["mediaType"], "digest": f"sha256:{new_digest}", "size": len(body),
                           "annotations": {"org.opencontainers.image.ref.name": "latest"}}]
    (layered / "index.json").write_text(json.dumps(index))
    push(layered, train, creds, "bench/layered:v2")
    seconds, rss = train_mirror(env, "bench/layered:v2", f"http://{reference}/train/layered")
    # What the new image has that the first mirror did not, and what the second mirror actually sent.
    code = ("import django, json; django.setup(); from registry.models import Mirror;"
            "old, new = Mirror.objects.filter(target_repository='train/layered').order_by('id');"
            "before = set(old.blobs.values_list('digest', flat=True));"
            "fresh = new.blobs.exclude(digest__in=before); sent = new.blobs.filter(bytes_sent__gt=0);"
            "print(json.dumps({'blobs': sent.count(), 'bytes': sum(x.bytes_sent for x in sent),"
            " 'changed_bytes': sum(x.size for x in fresh)}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    sent = json.loads(out.stdout.strip().splitlines()[-1])
    return {"seconds": round(seconds, 2), "blobs_sent": sent["blobs"], "bytes_sent": sent["bytes"],
            "layer_bytes": sent["changed_bytes"], "rss": rss}


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    main()
