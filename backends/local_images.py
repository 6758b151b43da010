"""Freeing the local backend's image store (container mode with podman).

Each container job pulls its image into Train's own podman store (TRAIN_LOCAL_CONTAINERS_DIR), and
nothing else removes it: on a busy host the store grows with every digest ever run. The core calls
`local_images_prune` on a schedule with the digests still wanted (jobs active, or finished recently
enough that a re-run is likely), and every other image is removed, unless a container still uses it
(podman refuses, and the image stays until the next pass).

A supervisor holds the prune lock shared from its pull until its container exists
(backends/local_container.py), and a prune holds it exclusively: an image is never removed between a
job's pull and its create, where the create (`--pull never`) would then fail.

docker is not pruned: its image store is the host daemon's, shared with whatever else runs there."""

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

from backends.local_container import EngineError, engine_call, prune_lock
from backends.local_engine import containers_dir, engine_environment, local_engine

log = logging.getLogger(__name__)

PRUNE_LOCK_NAME = "prune.lock"


@dataclass
class PruneReport:
    removed: list[str] = field(default_factory=list)  # image ids
    kept: int = 0  # a digest still wanted
    in_use: int = 0  # podman refused: a container uses it
    skipped: str = ""  # why the store was not looked at


def prune_lock_path() -> Path:
    return containers_dir() / PRUNE_LOCK_NAME


def local_images_prune(*, keep_digests: set[str]) -> PruneReport:
    """Remove every image of Train's podman store that no wanted digest names and no container uses."""
    engine = local_engine()
    if not (engine.container and engine.ok):
        return PruneReport(skipped=engine.message or "local jobs run as host processes")
    if engine.runtime != "podman":
        return PruneReport(skipped="docker's image store is the host's own: Train leaves it alone")
    podman = {"binary": engine.binary, "engine": engine.runtime, "engine_env": engine_environment(engine.runtime)}
    report = PruneReport()
    containers_dir().mkdir(mode=0o700, parents=True, exist_ok=True)
    with prune_lock(prune_lock_path(), exclusive=True):
        try:
            listed = engine_call(podman, "images", "--format", "json")
        except EngineError as exc:
            return PruneReport(skipped=f"podman images failed: {exc}")
        images = {image["Id"]: image for image in json.loads(listed.stdout or "[]")}  # one entry per name
        for image_id, image in images.items():
            if image_digests(image) & keep_digests:
                report.kept += 1
                continue
            if image.get("Containers"):
                report.in_use += 1
                continue
            try:
                # By its names when it has several: podman refuses to remove such an image by id alone.
                engine_call(podman, "image", "rm", *(image.get("Names") or [image_id]))
            except EngineError as exc:  # podman refused: the image stays until the next pass
                report.in_use += 1
                log.info("image %s stays: %s", image_id[:12], exc)
                continue
            report.removed.append(image_id)
    return report


def image_digests(image: dict) -> set[str]:
    """The manifest digests a podman image entry is known by (its own, and each `repo@digest`)."""
    digests = {image.get("Digest") or ""}
    digests.update(reference.rpartition("@")[2] for reference in image.get("RepoDigests") or [])
    return {digest for digest in digests if digest.startswith("sha256:")}

