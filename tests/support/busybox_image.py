"""A tiny runnable image, built as an OCI layout by Python: one layer holding a static busybox (from
Debian's busybox-static) with the applets the tests use, and a file only this image has
(/etc/train-image), so a job's output proves it ran inside the image."""

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

from tests.conftest import require_tool

APPLETS = ("sh", "cat", "echo", "id", "sleep", "ls", "test", "touch", "true", "wc")
MANIFEST = "application/vnd.oci.image.manifest.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"


def _blob(root: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _entry(tar: tarfile.TarFile, name: str, *, data: bytes | None = None, mode: int = 0o755,
           link: str = "", directory: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.mtime, info.mode = 0, mode
    if directory:
        info.type = tarfile.DIRTYPE
    elif link:
        info.type, info.linkname = tarfile.SYMTYPE, link
    else:
        info.size = len(data)
    tar.addfile(info, io.BytesIO(data) if data is not None else None)


def build_busybox_image(root: Path, tag: str, *, marker: str) -> str:
    """Write (or add `tag` to) the OCI layout at `root`; returns the manifest digest."""
    busybox = Path(require_tool("busybox")).resolve().read_bytes()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory, mode in (("bin", 0o755), ("etc", 0o755), ("tmp", 0o1777), ("mnt", 0o755)):
            _entry(tar, directory, mode=mode, directory=True)
        _entry(tar, "bin/busybox", data=busybox)
        for applet in APPLETS:
            _entry(tar, f"bin/{applet}", link="busybox")
        _entry(tar, "etc/train-image", data=f"{marker}\n".encode(), mode=0o644)
    layer = raw.getvalue()
    root.mkdir(parents=True, exist_ok=True)
    config = {"architecture": "amd64", "os": "linux", "config": {"Env": ["PATH=/bin"], "Cmd": ["sh"]},
              "rootfs": {"type": "layers", "diff_ids": [f"sha256:{hashlib.sha256(layer).hexdigest()}"]}}
    manifest = {
        "schemaVersion": 2, "mediaType": MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **_blob(root, json.dumps(config).encode())},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    **_blob(root, gzip.compress(layer, mtime=0))}],
    }
    descriptor = {"mediaType": MANIFEST, **_blob(root, json.dumps(manifest).encode())}
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = root / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
    index["manifests"].append({**descriptor, "annotations": {REF_NAME: tag}})
    index_path.write_text(json.dumps(index))
    return descriptor["digest"]
