"""Blob stores: where blob bytes and unfinished uploads live. `filesystem` (default) or `s3`.

Keys are built only from validated digests and upload UUIDs, never from names a client sent.
Bodies stream in both directions in bounded chunks; memory does not grow with blob size.

An upload moves through: `upload_init` → `upload_write`… (each call continues at the upload's
committed offset, by the request holding its lease; `upload_committed` after the commit) →
`upload_assemble` → `upload_read` (to re-hash the stored bytes, without a saved hash state or after
a lease takeover) → `upload_promote` (into its content address, replacing whatever was there) or
`upload_discard`. A blob that fails `manage.py registry_verify` is moved aside with `blob_quarantine`."""

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


HEX_LENGTHS = {"sha256": 64, "sha512": 128}


class UploadDamaged(Exception):
    """The store holds something other than the bytes the upload's commits recorded."""


class StoredItem(NamedTuple):
    """What garbage collection sees of a stored blob (`name` is its digest) or of the stored bytes of
    an upload session (`name` is the session's UUID): size and last write."""

    name: str
    size: int
    modified: dt.datetime


def _digest_from_hex(hex_: str, algorithm: str = "sha256") -> str | None:
    if len(hex_) == HEX_LENGTHS[algorithm] and all(c in "0123456789abcdef" for c in hex_):
        return f"{algorithm}:{hex_}"
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
    if len(hex_) != HEX_LENGTHS.get(algorithm) or any(c not in "0123456789abcdef" for c in hex_):
        raise ValueError("blob keys are built from validated sha256 or sha512 digests only")
    return hex_


def _blob_subpath(digest: str) -> str:
    """`<algorithm>/<hex>`: sha256 blobs keep the layout they always had; sha512 ones sit beside them."""
    return f"{digest.partition(':')[0]}/{_hex(digest)}"


class FilesystemStore:
    # One file per session: a writer that outlived its lease could still write into bytes another
    # request has since committed, so after a takeover the bytes are read back and hashed at promote.
    REHASH_AFTER_TAKEOVER = True

    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "uploads").mkdir(parents=True, exist_ok=True)
        (self.root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)

    def _blob_path(self, digest: str) -> Path:
        algorithm, hex_ = _blob_subpath(digest).split("/")
        return self.root / "blobs" / algorithm / hex_[:2] / hex_

    def _upload_path(self, upload) -> Path:
        return self.root / "uploads" / str(upload.id)

    def _quarantine_path(self, digest: str) -> Path:
        return self.root / "quarantine" / _blob_subpath(digest)

    def upload_init(self, upload) -> dict:
        self._upload_path(upload).touch()
        return {}

    def upload_write(self, upload, chunks: Iterable[bytes], *, token: str) -> dict:
        # Only the lease holder gets here. Continue at the committed offset: bytes that an earlier
        # request wrote past it (it died, or failed, before committing) are cut off.
        with open(self._upload_path(upload), "r+b") as out:
            out.truncate(upload.offset)
            out.seek(upload.offset)
            for chunk in chunks:
                out.write(chunk)
        return upload.store_state

    def upload_committed(self, upload, previous_state: dict) -> None:
        return None

    def upload_assemble(self, upload) -> None:
        # Cut what an interrupted request may have written past the committed offset, so the bytes
        # re-hashed are exactly the bytes promoted.
        os.truncate(self._upload_path(upload), upload.offset)

    def upload_read(self, upload) -> Iterator[bytes]:
        with open(self._upload_path(upload), "rb") as src:
            while chunk := src.read(CHUNK_BYTES):
                yield chunk

    def upload_promote(self, upload, digest: str) -> None:
        """Move the verified upload into place, replacing a file already there (one without a Blob
        row, or a quarantined one: the caller never promotes over a served blob). Rename is atomic:
        a reader sees the old file or the new one, never a mix."""
        target = self._blob_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self._upload_path(upload), target)

    def upload_discard(self, upload) -> None:
        self._upload_path(upload).unlink(missing_ok=True)

    def blob_exists(self, digest: str) -> bool:
        return self._blob_path(digest).is_file()

    def blob_open(self, digest: str, start: int, length: int):
        return BoundedFile(open(self._blob_path(digest), "rb"), start, length)

    def blob_size(self, digest: str) -> int | None:
        """The stored size, or None when the blob's file is missing."""
        try:
            return self._blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def blob_delete(self, digest: str) -> None:
        self._blob_path(digest).unlink(missing_ok=True)

    def blob_quarantine(self, digest: str) -> None:
        """Move the blob's file aside (kept for inspection), so a verified push can put it back."""
        target = self._quarantine_path(digest)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(self._blob_path(digest), target)
        except FileNotFoundError:
            pass

    # --- listing, for garbage collection ---

    def blob_list(self) -> Iterator[StoredItem]:
        for algorithm in HEX_LENGTHS:
            directory = self.root / "blobs" / algorithm
            for shard in sorted(directory.iterdir()) if directory.is_dir() else ():
                for path in sorted(shard.iterdir()) if shard.is_dir() else ():
                    digest = _digest_from_hex(path.name, algorithm)
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
    not yet fill a part wait in a small tail object, so every request of the session may run on a
    different gateway and parts stay above S3's 5 MiB minimum.

    Nothing a request writes is read unless its commit recorded it: each request writes its own
    tail object (`tail-<lease token>`), and the upload is completed from the parts' recorded ETags,
    so a part re-sent by a request that later died or lost its lease is refused, never assembled."""

    PART_BYTES = 8 * 1024 * 1024
    # A late writer reaches only its own tail object, or a part whose recorded ETag then no longer
    # matches (completion refuses it): the completed object is the committed bytes, takeover or not.
    REHASH_AFTER_TAKEOVER = False

    def __init__(self, *, bucket: str, prefix: str = "", endpoint_url: str | None = None, region: str = "us-east-1"):
        import boto3  # only gateways configured for S3 import the SDK

        self.bucket = bucket
        self.prefix = prefix
        self.client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region)

    def _blob_key(self, digest: str) -> str:
        return f"{self.prefix}blobs/{_blob_subpath(digest)}"

    def _upload_key(self, upload, part: str) -> str:
        return f"{self.prefix}uploads/{upload.id}/{part}"

    def upload_init(self, upload) -> dict:
        created = self.client.create_multipart_upload(Bucket=self.bucket, Key=self._upload_key(upload, "data"))
        return {"mpu": created["UploadId"], "parts": 0, "tail": 0}

    @staticmethod
    def _tail_name(state) -> str:
        # Sessions begun before tails were per request kept theirs under "tail".
        return state.get("tail_key", "tail")

    def _read_tail(self, upload, state) -> bytes:
        if not state["tail"]:
            return b""
        body = self.client.get_object(Bucket=self.bucket, Key=self._upload_key(upload, self._tail_name(state)))
        return body["Body"].read()  # smaller than one part by construction

    def _put_part(self, upload, state, data: bytes) -> None:
        sent = self.client.upload_part(Bucket=self.bucket, Key=self._upload_key(upload, "data"),
                                       UploadId=state["mpu"], PartNumber=state["parts"] + 1, Body=data)
        state["parts"] += 1
        state["etags"] = [*state.get("etags", []), sent["ETag"]]

    def upload_write(self, upload, chunks: Iterable[bytes], *, token: str) -> dict:
        state = dict(upload.store_state)
        buffer = bytearray(self._read_tail(upload, state))
        for chunk in chunks:
            buffer += chunk
            while len(buffer) >= self.PART_BYTES:
                self._put_part(upload, state, bytes(buffer[: self.PART_BYTES]))
                del buffer[: self.PART_BYTES]
        # This request's own object: until the commit names it, no other request reads it.
        state["tail_key"] = f"tail-{token}" if buffer else ""
        if buffer:
            self.client.put_object(Bucket=self.bucket, Key=self._upload_key(upload, state["tail_key"]),
                                   Body=bytes(buffer))
        state["tail"] = len(buffer)
        return state

    def upload_committed(self, upload, previous_state: dict) -> None:
        """The tail the previous commit named is no longer read by anyone: remove it."""
        old = self._tail_name(previous_state)
        if previous_state.get("tail") and old != self._tail_name(upload.store_state):
            self.client.delete_object(Bucket=self.bucket, Key=self._upload_key(upload, old))

    def _recorded_parts(self, upload, state) -> list[dict]:
        if "etags" in state:
            return [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(state["etags"], start=1)]
        # A session begun before ETags were recorded: parts 1..n as listed.
        parts = []
        paginator = self.client.get_paginator("list_parts")
        for page in paginator.paginate(Bucket=self.bucket, Key=self._upload_key(upload, "data"), UploadId=state["mpu"]):
            parts += [{"PartNumber": p["PartNumber"], "ETag": p["ETag"]} for p in page.get("Parts", [])
                      if p["PartNumber"] <= state["parts"]]
        return sorted(parts, key=lambda p: p["PartNumber"])

    def upload_assemble(self, upload) -> None:
        state = dict(upload.store_state)
        if state["tail"] or state["parts"] == 0:
            self._put_part(upload, state, self._read_tail(upload, state))
        # Exactly the parts the commits recorded, by ETag: a part overwritten since by a request that
        # never committed makes S3 refuse the completion instead of assembling its bytes.
        try:
            self.client.complete_multipart_upload(
                Bucket=self.bucket, Key=self._upload_key(upload, "data"), UploadId=state["mpu"],
                MultipartUpload={"Parts": self._recorded_parts(upload, state)},
            )
        except self.client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidPart":
                raise UploadDamaged(str(exc)) from exc
            raise

    def upload_read(self, upload) -> Iterator[bytes]:
        body = self.client.get_object(Bucket=self.bucket, Key=self._upload_key(upload, "data"))["Body"]
        yield from body.iter_chunks(CHUNK_BYTES)

    def upload_promote(self, upload, digest: str) -> None:
        """Copy the verified upload into place (replacing an object without a Blob row, or a
        quarantined one; the caller never promotes over a served blob). Server-side copy; boto3
        switches to a multipart copy above 5 GiB."""
        self.client.copy({"Bucket": self.bucket, "Key": self._upload_key(upload, "data")}, self.bucket,
                         self._blob_key(digest))
        self._delete_upload_objects(upload)

    def _delete_upload_objects(self, upload) -> None:
        # Every object of the session, including tails of requests that never committed.
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self._upload_key(upload, "")):
            for item in page.get("Contents", []):
                self.client.delete_object(Bucket=self.bucket, Key=item["Key"])

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

    def blob_size(self, digest: str) -> int | None:
        """The stored size, or None when the blob's object is missing."""
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self._blob_key(digest))["ContentLength"]
        except self.client.exceptions.ClientError:
            return None

    def blob_open(self, digest: str, start: int, length: int):
        if length == 0:
            return BytesReader(b"")
        end = start + length - 1
        return self.client.get_object(Bucket=self.bucket, Key=self._blob_key(digest),
                                      Range=f"bytes={start}-{end}")["Body"]

    def blob_delete(self, digest: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._blob_key(digest))

    def blob_quarantine(self, digest: str) -> None:
        """Move the object aside (kept for inspection), so a verified push can put it back."""
        source = {"Bucket": self.bucket, "Key": self._blob_key(digest)}
        try:
            self.client.copy(source, self.bucket, f"{self.prefix}quarantine/{_blob_subpath(digest)}")
        except self.client.exceptions.ClientError:
            return  # already gone: nothing to keep
        self.client.delete_object(**source)

    # --- listing, for garbage collection ---

    def _objects(self, prefix: str) -> Iterator[dict]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Contents", [])

    def _multipart_uploads(self, prefix: str) -> Iterator[dict]:
        for page in self.client.get_paginator("list_multipart_uploads").paginate(Bucket=self.bucket, Prefix=prefix):
            yield from page.get("Uploads", [])

    def blob_list(self) -> Iterator[StoredItem]:
        for algorithm in HEX_LENGTHS:
            prefix = f"{self.prefix}blobs/{algorithm}/"
            for item in self._objects(prefix):
                digest = _digest_from_hex(item["Key"][len(prefix):], algorithm)
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
