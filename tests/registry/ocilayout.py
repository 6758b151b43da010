"""Build OCI image layouts on disk (for `skopeo copy oci:<dir>:<tag> …`): single images with several
layers, and multi-arch indexes. Layers are small tars of seeded random files, so two builds with
different seeds never share a digest (and a test never reuses another test's blobs by accident)."""

import gzip
import hashlib
import io
import json
import random
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
REF_NAME = "org.opencontainers.image.ref.name"


@dataclass
class Built:
    digest: str  # of the top manifest or index
    media_type: str
    blobs: list[str] = field(default_factory=list)  # every config and layer digest
    children: list[str] = field(default_factory=list)  # manifests of an index


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _write_blob(root: Path, data: bytes) -> dict:
    digest = _digest(data)
    path = root / "blobs" / "sha256" / digest.split(":", 1)[1]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": digest, "size": len(data)}


def _layer(rng: random.Random, index: int, size: int) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        payload = rng.randbytes(size)
        info = tarfile.TarInfo(f"layer{index}/data.bin")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    uncompressed = raw.getvalue()
    return gzip.compress(uncompressed, mtime=0), _digest(uncompressed)


def _image(root: Path, *, seed: int, layers: int, layer_bytes: int, arch: str) -> tuple[dict, Built]:
    rng = random.Random(f"{seed}-{arch}")
    layer_descriptors, diff_ids = [], []
    for index in range(layers):
        compressed, diff_id = _layer(rng, index, layer_bytes)
        layer_descriptors.append({"mediaType": OCI_LAYER_GZIP, **_write_blob(root, compressed)})
        diff_ids.append(diff_id)
    config = {"architecture": arch, "os": "linux", "config": {"Cmd": ["/bin/true"]},
              "rootfs": {"type": "layers", "diff_ids": diff_ids}}
    config_descriptor = {"mediaType": OCI_CONFIG, **_write_blob(root, json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config_descriptor,
                "layers": layer_descriptors}
    descriptor = {"mediaType": OCI_MANIFEST, **_write_blob(root, json.dumps(manifest, indent=1).encode())}
    blobs = [config_descriptor["digest"]] + [d["digest"] for d in layer_descriptors]
    return descriptor, Built(digest=descriptor["digest"], media_type=OCI_MANIFEST, blobs=blobs)


def _add_ref(root: Path, descriptor: dict, tag: str) -> None:
    (root / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    index_path = root / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"schemaVersion": 2, "manifests": []}
    index["manifests"] = [m for m in index["manifests"] if m.get("annotations", {}).get(REF_NAME) != tag]
    index["manifests"].append({**descriptor, "annotations": {REF_NAME: tag}})
    index_path.write_text(json.dumps(index))


def build_image(root: Path, tag: str = "latest", *, seed: int = 0, layers: int = 2, layer_bytes: int = 4096,
                arch: str = "amd64") -> Built:
    """An OCI image with `layers` gzip layers, referenced in the layout as `tag`."""
    root.mkdir(parents=True, exist_ok=True)
    descriptor, built = _image(root, seed=seed, layers=layers, layer_bytes=layer_bytes, arch=arch)
    _add_ref(root, descriptor, tag)
    return built


def build_index(root: Path, tag: str = "latest", *, seed: int = 0, arches=("amd64", "arm64"),
                layers: int = 1, layer_bytes: int = 2048) -> Built:
    """A multi-arch OCI index over one image per architecture, referenced as `tag`."""
    root.mkdir(parents=True, exist_ok=True)
    entries, built = [], Built(digest="", media_type=OCI_INDEX)
    for arch in arches:
        descriptor, image = _image(root, seed=seed, layers=layers, layer_bytes=layer_bytes, arch=arch)
        entries.append({**descriptor, "platform": {"architecture": arch, "os": "linux"}})
        built.blobs += image.blobs
        built.children.append(image.digest)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    descriptor = {"mediaType": OCI_INDEX, **_write_blob(root, json.dumps(index).encode())}
    _add_ref(root, descriptor, tag)
    built.digest = descriptor["digest"]
    return built


def blob_bytes(root: Path, digest: str) -> bytes:
    return (root / "blobs" / "sha256" / digest.split(":", 1)[1]).read_bytes()
