"""Blob stores: where blob bytes and unfinished uploads live. `filesystem` (default) or `s3`.

Keys are built only from validated digests and upload UUIDs, never from names a client sent.
Bodies stream in both directions in bounded chunks; memory does not grow with blob size.

An upload moves through: `upload_init` → `upload_write`… (each call continues at the upload's
offset) → `upload_assemble` → (`upload_read` to re-hash, only without a saved hash state) →
`upload_promote` (into its content address) or `upload_discard`."""

import datetime as dt
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from functools import cache
from pathlib import Path
from typing import NamedTuple

from django.conf import settings

CHUNK_BYTES = 1024 * 1024


class BoundedFile:
    """A read-only window [start, start+length) of an open file. Exposes `fileno`, so gunicorn's
    sendfile path serves it straight from the page cache (it sends Content-Length bytes from the
    file's current position); other servers and the test client read it chunk by chunk."""

    def __init__(self, file, start: int, length: int):
        self._file = file
        self._left = length
        file.seek(start)

    def fileno(self):
        return self._file.fileno()

    def read(self, size: int = -1) -> bytes:
        if self._left <= 0:
            return b""
        size = self._left if size is None or size < 0 else min(size, self._left)
        data = self._file.read(size)
        self._left -= len(data)
        return data

    def close(self):
        self._file.close()


class StoredItem(NamedTuple):
    """What garbage collection sees of a stored blob (`name` is its digest) or of the stored bytes of
    an upload session (`name` is the session's UUID): size and last write."""

    name: str
    size: int
    modified: dt.datetime


def _digest_from_hex(hex_: str) -> str | None:
    if len(hex_) == 64 and all(c in "0123456789abcdef" for c in hex_):
        return "sha256:" + hex_
    return None


def _upload_id(name: str) -> str | None:
    try:
        return str(uuid.UUID(name)) if len(name) == 36 else None
    except ValueError:
        return None


def _mtime(stat) -> dt.datetime:
    return dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC)


def _hex(digest: str) -> str:
    algorithm, _, hex_ = digest.partition(":")
    if algorithm != "sha256" or len(hex_) != 64 or any(c not in "0123456789abcdef" for c in hex_):
        raise ValueError("blob keys are built from validated sha256 digests only")
    return hex_


class FilesystemStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def _blob_path(self, digest: str) -> Path:
        hex_ = _hex(digest)
        return self.root / "blobs" / "sha256" / hex_[:2] / hex_

    def _upload_path(self, upload) -> Path:
        return self.root / "uploads" / str(upload.id)

    def upload_init(self, upload) -> dict:
        self._upload_path(upload).touch()
        return {}

    def upload_write(self, upload, chunks: Iterable[bytes]) -> dict:
        # Continue at the recorded offset: bytes of an earlier interrupted request are cut off.
        with open(self._upload_path(upload), "r+b") as out:
            out.truncate(upload.offset)
            out.seek(upload.offset)
            for chunk in chunks:
                out.write(chunk)
        return upload.store_state

    def upload_assemble(self, upload) -> None:
        return None

    def upload_read(self, upload) -> Iterator[bytes]:
        with open(self._upload_path(upload), "rb") as src:
            while chunk := src.read(CHUNK_BYTES):
                yield chunk

    def upload_promote(self, upload, digest: str) -> None:
        target = self._blob_path(digest)
        source = self._upload_path(upload)
        if target.exists():
            source.unlink(missing_ok=True)
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        # Truncate to the verified length (an interrupted request may have written past it), then
        # rename: readers see either no blob or the whole verified blob.
        os.truncate(source, upload.offset)
        os.replace(source, target)

    def upload_discard(self, upload) -> None:
        self._upload_path(upload).unlink(missing_ok=True)

    def blob_exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def blob_open(self, digest: str, start: int, length: int):
        return BoundedFile(open(self._blob_path(digest), "rb"), start, length)

    def blob_delete(self, digest: str) -> None:
        self._blob_path(digest).unlink(missing_ok=True)

    # --- listing, for garbage collection ---

    def blob_list(self) -> Iterator[StoredItem]:
        for shard in sorted((self.root / "blobs" / "sha256").iterdir()):
            for path in sorted(shard.iterdir()) if shard.is_dir() else ():
                digest = _digest_from_hex(path.name)
                if digest and path.is_file():
                    stat = path.stat()
                    yield StoredItem(digest, stat.st_size, _mtime(stat))

    def upload_list(self) -> Iterator[StoredItem]:
        for path in sorted((self.root / "uploads").iterdir()):
            upload_id = _upload_id(path.name)
            if upload_id is None:
                continue
            files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
            stats = [f.stat() for f in files] or [path.stat()]
            yield StoredItem(upload_id, sum(st.st_size for st in stats if files),
                             max(_mtime(st) for st in stats))

    def upload_remove(self, upload_id: str) -> None:
        """Remove whatever is stored for session `upload_id` (which has no row any more)."""
        path = self.root / "uploads" / str(uuid.UUID(upload_id))
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


class S3Store:
    """Any S3-compatible bucket. An upload is an S3 multipart upload of fixed-size parts; bytes that do
    not yet fill a part wait in a small `tail` object, so every request of the session may run on a
    different gateway and parts stay above S3's 5 MiB minimum."""

    PART_BYTES = 8 * 1024 * 1024

    def __init__(self, *, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str = "us-east-1"):
        import boto3  # only gateways configured for S3 import the SDK

        self.bucket = bucket
        self.prefix = prefix
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _blob_key(self, digest: str) -> str:
        return f"{self.prefix}blobs/sha256/{_hex(digest)}"

    def _upload_key(self, upload, part: str) -> str:
        return f"{self.prefix}uploads/{upload.id}/{part}"

    def upload_init(self, upload) -> dict:
        created = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._upload_key(upload, "data"))
        return {"mpu": created["UploadId"], "parts": 0, "tail": 0}

    def _read_tail(self, upload, state) -> bytes:
        if not state["tail"]:
            return b""
        body = self.client.get_object(Bucket=self.bucket, Key=self._upload_key(upload, "tail"))["Body"]
        return body.read()  # smaller than one part by construction

    def _put_part(self, upload, state, data: bytes) -> None:
        self.client.upload_part(Bucket=self.bucket, Key=self._upload_key(upload, "data"), UploadId=state["mpu"],
                                PartNumber=state["parts"] + 1, Body=data)
        state["parts"] += 1

    def upload_write(self, upload, chunks: Iterable[bytes]) -> dict:
        state = dict(upload.store_state)
        buffer = bytearray(self._read_tail(upload, state))
        for chunk in chunks:
            buffer += chunk
            while len(buffer) >= self.PART_BYTES:
                self._put_part(upload, state, bytes(buffer[: self.PART_BYTES]))
                del buffer[: self.PART_BYTES]
        if buffer:
            self.client.put_object(Bucket=self.bucket, Key=self._upload_key(upload, "tail"), Body=bytes(buffer))
        state["tail"] = len(buffer)
        return state

    def upload_assemble(self, upload) -> None:
        state = dict(upload.store_state)
        if state["tail"] or state["parts"] == 0:
            self._put_part(upload, state, self._read_tail(upload, state))
        # Only parts 1..n count: a request cut off after uploading a part never recorded it.
        parts = []
        paginator = self.client.get_paginator("list_parts")
        for page in paginator.paginate(Bucket=self.bucket, Key=self._upload_key(upload, "data"), UploadId=state["mpu"]):
            parts += [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in page.get("Parts", [])
                      if p["PartNumber"] <= state["parts"]]
        self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=self._upload_key(upload, "data"), UploadId=state["mpu"],
            MultipartUpload={"Parts": sorted(parts, key=lambda p: p["PartNumber"])},
        )

    def upload_read(self, upload) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._upload_key(upload, "data"))["Body"]
        yield from body.iter_chunks(CHUNK_BYTES)

    def upload_promote(self, upload, digest: str) -> None:
        if not self.blob_exists(digest):
            # Server-side copy; boto3 switches to a multipart copy above 5 GiB.
            self.client.copy({"Bucket": self.bucket, "Key": self._upload_key(upload, "data")}, self.bucket,
                             self._blob_key(digest))
        self._delete_upload_objects(upload)

    def _delete_upload_objects(self, upload) -> None:
        for part in ("data", "tail"):
            self.client.delete_object(Bucket=self.bucket, Key=self._upload_key(upload, part))

    def upload_discard(self, upload) -> None:
        mpu = (upload.store_state or {}).get("mpu")
        if mpu:
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=self._upload_key(upload, "data"),
                                                   UploadId=mpu)
            except self.client.exceptions.ClientError:
                pass  # already completed or aborted
        self._delete_upload_objects(upload)

    def blob_exists(self, digest: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self._blob_key(digest))
        except self.client.exceptions.ClientError:
            return False
        return True

    def blob_open(self, digest: str, start: int, length: int):
        if length == 0:
            return BytesReader(b"")
        end = start + length - 1
        return self.client.get_object(Bucket=self.bucket, Key=self._blob_key(digest),
                                      Range=f"bytes={start}-{end}")["Body"]

    def blob_delete(self, digest: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._blob_key(digest))

    # --- listing, for garbage collection ---

    def _objects(self, prefix: str) -> Iterator[dict]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _multipart_uploads(self, prefix: str) -> Iterator[dict]:
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Uploads", [])

    def blob_list(self) -> Iterator[StoredItem]:
        prefix = f"{self.prefix}blobs/sha256/"
        for item in self._objects(prefix):
            digest = _digest_from_hex(item["Key"][len(prefix):])
            if digest:
                yield StoredItem(digest, item["Size"], item["LastModified"])

    def upload_list(self) -> Iterator[StoredItem]:
        prefix = f"{self.prefix}uploads/"
        found: dict[str, tuple[int, dt.datetime]] = {}

        def add(key: str, size: int, modified: dt.datetime) -> None:
            upload_id = _upload_id(key[len(prefix):].split("/", 1)[0])
            if upload_id:
                total, latest = found.get(upload_id, (0, modified))
                found[upload_id] = (total + size, max(latest, modified))

        for item in self._objects(prefix):
            add(item["Key"], item["Size"], item["LastModified"])
        for mpu in self._multipart_uploads(prefix):
            add(mpu["Key"], 0, mpu["Initiated"])
            for page in self.client.get_paginator("list_parts").paginate(
                    Bucket=self.bucket, Key=mpu["Key"], UploadId=mpu["UploadId"]):
                for part in page.get("Parts", []):
                    add(mpu["Key"], part["Size"], part["LastModified"])
        for upload_id, (size, modified) in sorted(found.items()):
            yield StoredItem(upload_id, size, modified)

    def upload_remove(self, upload_id: str) -> None:
        """Remove whatever is stored for session `upload_id` (which has no row any more)."""
        prefix = f"{self.prefix}uploads/{uuid.UUID(upload_id)}/"
        for mpu in list(self._multipart_uploads(prefix)):
            try:
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=mpu["Key"], UploadId=mpu["UploadId"])
            except self.client.exceptions.ClientError:
                pass  # completed or aborted meanwhile
        for item in list(self._objects(prefix)):
            self.client.delete_object(Bucket=self.bucket, Key=item["Key"])


class BytesReader:
    def __init__(self, data: bytes):
        self._data = data

    def read(self, size: int = -1) -> bytes:
        data, self._data = (self._data, b"") if size is None or size < 0 else (self._data[:size], self._data[size:])
        return data

    def close(self):
        self._data = b""


@cache
def _store(kind: str, root: str, bucket: str, prefix: str, endpoint: str | None, region: str):
    if kind == "filesystem":
        return FilesystemStore(Path(root))
    if kind == "s3":
        if not bucket:
            raise ValueError("TRAIN_REGISTRY_S3_BUCKET must be set for the s3 blob store")
        return S3Store(bucket=bucket, prefix=prefix, endpoint_url=endpoint, region=region)
    raise ValueError(f"unknown TRAIN_REGISTRY_STORE {kind!r}; use 'filesystem' or 's3'")


def get_store():
    """The configured store (one per process and configuration)."""
    return _store(settings.TRAIN_REGISTRY_STORE, str(settings.TRAIN_REGISTRY_DATA_DIR),
                  settings.TRAIN_REGISTRY_S3_BUCKET, settings.TRAIN_REGISTRY_S3_PREFIX,
                  settings.TRAIN_REGISTRY_S3_ENDPOINT_URL, settings.TRAIN_REGISTRY_S3_REGION)
