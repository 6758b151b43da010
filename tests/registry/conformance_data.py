"""The data sets of the OCI distribution-spec conformance program (conformance/testdata.go and the data
part of run.go on the spec's main branch), generated the same way: random gzip'd tar layers, image
configs, manifests, indexes, artifacts, subjects. Each set records what a registry must then serve."""

import base64
import gzip
import hashlib
import io
import json
import os
import tarfile
from dataclasses import dataclass, field

OCTET = "application/octet-stream"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_IMAGE = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ND = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_ND_GZ = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
EXAMPLE_1 = "application/vnd.example.oci.conformance.v1"
EXAMPLE_2 = "application/vnd.example.oci.conformance.v2"
PLATFORMS = [{"os": "linux", "architecture": "amd64"}, {"os": "linux", "architecture": "arm64"}]


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def canonical(document: dict) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@dataclass
class DataSet:
    name: str
    algorithm: str = "sha256"
    blobs: dict = field(default_factory=dict)  # digest -> bytes the registry must hold
    manifests: dict = field(default_factory=dict)  # digest -> bytes, pushed in insertion order
    tags: dict = field(default_factory=dict)  # tag -> digest
    referrers: dict = field(default_factory=dict)  # subject digest -> [descriptor]
    bad_digest: set = field(default_factory=set)  # manifests whose bytes do not match their digest
    opts: dict = field(default_factory=dict)  # generation options for this set

    def add_blob(self, data: bytes, media_type: str = OCTET, *, stored: bool = True) -> dict:
        dig = digest(data, self.algorithm)
        if stored:
            self.blobs[dig] = data
        descriptor = {"mediaType": media_type, "digest": dig, "size": len(data)}
        if self.opts.get("data_field"):
            descriptor["data"] = base64.b64encode(data).decode()
        return descriptor

    def layer(self, number: int, *, compress: bool = True) -> tuple[dict, str]:
        """A tar layer (gzip'd unless told otherwise): its descriptor and its uncompressed digest."""
        text = f"Conformance test file contents for file number {number}.\nLucky number {os.urandom(8).hex()}\n"
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as tar:
            info = tarfile.TarInfo(f"./conformance-{number}.txt")
            info.size, info.mode = len(text), 0o644
            tar.addfile(info, io.BytesIO(text.encode()))
        body = gzip.compress(raw.getvalue(), mtime=0) if compress else raw.getvalue()
        return self.add_blob(body, OCI_LAYER_GZ if compress else OCI_LAYER), digest(raw.getvalue(), self.algorithm)

    def config(self, platform: dict, diff_ids: list) -> dict:
        document = {"author": "OCI Conformance Test", **platform, "rootfs": {"type": "layers", "diff_ids": diff_ids}}
        return self.add_blob(canonical(self._extra(document)), OCI_CONFIG)

    def _extra(self, document: dict) -> dict:
        return {**document, "x-conformance-extra": os.urandom(4).hex()} if self.opts.get("custom_fields") else document

    def _annotations(self, annotations, unique: bool):
        annotations = dict(annotations or {})
        if unique:
            annotations[f"org.example.{os.urandom(8).hex()}"] = os.urandom(8).hex()
        return annotations or None

    def _record(self, document: dict, tag: str | None) -> str:
        body = canonical(self._extra({key: value for key, value in document.items() if value is not None}))
        dig = digest(body, self.algorithm)
        self.manifests[dig] = body
        subject = document.get("subject")
        if subject:
            artifact_type = document.get("artifactType") or (document.get("config") or {}).get("mediaType")
            goal = {"mediaType": document["mediaType"], "digest": dig, "size": len(body), "artifactType": artifact_type}
            if document.get("annotations"):
                goal["annotations"] = document["annotations"]
            self.referrers.setdefault(subject["digest"], []).append(goal)
        if tag:
            self.tags[tag] = dig
        return dig

    def descriptor_of(self, dig: str) -> dict:
        body = self.manifests[dig]
        return {"mediaType": json.loads(body)["mediaType"], "digest": dig, "size": len(body)}

    def image(self, *, tag=None, layer_count=2, platform=None, artifact_type=None, config_media_type=None,
              config_bytes=None, layer_media_type=None, layer_bytes=None, subject=None, annotations=None,
              unique=False, compress=True) -> str:
        layers, diff_ids = [], []
        for number in range(layer_count):
            if layer_media_type is None or layer_media_type.startswith("application/vnd.oci.image.layer.v1."):
                descriptor, diff_id = self.layer(number, compress=compress)
            else:
                descriptor = self.add_blob(layer_bytes if layer_bytes is not None else os.urandom(2048),
                                           layer_media_type)
                diff_id = descriptor["digest"]
            layers.append(descriptor)
            diff_ids.append(diff_id)
        if config_media_type in (None, OCI_CONFIG):
            config = self.config(platform or PLATFORMS[0], diff_ids)
        else:
            config = self.add_blob(config_bytes, config_media_type)
        return self._record({"schemaVersion": 2, "mediaType": OCI_IMAGE, "artifactType": artifact_type,
                             "config": config, "layers": layers, "subject": subject,
                             "annotations": self._annotations(annotations, unique)}, tag)

    def index(self, *, tag=None, platforms=PLATFORMS, children=None, artifact_type=None, subject=None,
              annotations=None, unique=False, **image_options) -> str:
        if children is None:
            children = [self.image(platform=platform, artifact_type=artifact_type, **image_options)
                        for platform in platforms]
        entries = []
        for child, platform in zip(children, platforms, strict=True):
            entry = self.descriptor_of(child)
            if platform:
                entry["platform"] = platform
            entries.append(entry)
        return self._record({"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": artifact_type,
                             "manifests": entries, "subject": subject,
                             "annotations": self._annotations(annotations, unique)}, tag)


def _artifact(**extra):
    return {"artifact_type": EXAMPLE_1, "config_media_type": OCI_EMPTY, "config_bytes": b"{}", "layer_count": 1,
            "layer_media_type": EXAMPLE_1, **extra}


def _non_distributable(data: DataSet) -> None:
    foreign = []
    for media_type, size in ((OCI_LAYER_ND_GZ, 123456), (OCI_LAYER_ND, 12345)):
        dig = digest(os.urandom(256), data.algorithm)
        foreign.append({"mediaType": media_type, "digest": dig, "size": size,
                        "urls": [f"https://store.example.com/blobs/sha256/{dig.split(':')[1]}"]})
    layer, diff_id = data.layer(1)
    config = data.config(PLATFORMS[0], [foreign[0]["digest"], foreign[1]["digest"], diff_id])
    data._record({"schemaVersion": 2, "mediaType": OCI_IMAGE, "config": config, "layers": [*foreign, layer]},
                 "non-distributable-image")


def data_sets() -> dict:
    """Every data set the program pushes, by name, generated afresh."""
    sets = {}

    def new(name, **opts):
        sets[name] = DataSet(name, algorithm=opts.pop("algorithm", "sha256"), opts=opts)
        return sets[name]

    new("image").image(tag="image")
    new("image-uncompressed").image(tag="image-uncompressed", compress=False)
    large = {f"large-annotation-{i}": "A" * 10000 for i in range(390)}
    new("large-manifest").image(tag="large-manifest", annotations=large)
    new("index").index(tag="index")
    nested = new("nested-index")
    nested.index(tag="index-of-index", platforms=[None, None], children=[nested.index(), nested.index()])
    new("empty-index").index(tag="index", platforms=[])
    new("artifact").image(tag="artifact", **_artifact())
    new("artifact-index").index(tag="artifact-index", **_artifact())
    new("artifact-without-layers").image(tag="artifact-without-layers",
                                         **_artifact(layer_media_type=OCI_EMPTY, layer_bytes=b"{}"))
    subjects = new("artifacts-with-subject")
    subject = subjects.descriptor_of(subjects.image(tag="image"))
    subjects.image(subject=subject)
    hello = {"org.opencontainers.conformance": "hello conformance test"}
    subjects.image(tag="tagged-artifact1", subject=subject, annotations=hello, unique=True, **_artifact())
    subjects.image(tag="tagged-artifact2", subject=subject, annotations=hello, unique=True,
                   **_artifact(artifact_type=EXAMPLE_2, layer_media_type=OCTET))
    indexed = new("index-with-subject")
    index_subject = indexed.descriptor_of(indexed.index(tag="index"))
    indexed.index(tag="tagged-artifact", subject=index_subject, annotations=hello, unique=True, **_artifact())
    missing = {"mediaType": OCI_IMAGE, "size": 123, "digest": digest(b"missing content")}
    new("missing-subject").image(tag="tagged-artifact", subject=missing, annotations=hello, unique=True, **_artifact())
    new("data-field", data_field=True).image(tag="data-field")
    _non_distributable(new("non-distributable-layers"))
    new("custom-fields", custom_fields=True).index(tag="custom-fields")
    new("no-layers").image(tag="no-layers", layer_count=0)
    new("sha512", algorithm="sha512").index()  # tags need the tag parameter for non-canonical digests
    for algorithm in ("sha256", "sha512"):  # tags sent as `?tag=` with the push by digest (spec 1.1+dev)
        tagged = new(f"tag-param-{algorithm}", algorithm=algorithm, tag_param=True)
        tagged.index(tag=f"tag-param-{algorithm}")
        for number, dig in enumerate(list(tagged.manifests)):
            tagged.tags[f"tag-param-{algorithm}-{number}"] = dig
    bad = new("bad-digest-image")
    dig = bad.image()
    bad.manifests[dig] += b"  "  # whitespace: the bytes no longer match the digest they are pushed by
    bad.bad_digest.add(dig)
    return sets
