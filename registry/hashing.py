"""A SHA-256 whose running state can be saved in the database and resumed by another process.

A blob upload is a sequence of requests (POST, PATCH…, PUT) that a load balancer may spread over
any gateway. hashlib cannot export its state, so each request would otherwise have to re-read
everything uploaded so far. OpenSSL's SHA256_CTX is a plain 112-byte struct, so we drive it through
ctypes and store those bytes with the upload (docs/decisions/0024-resumable-upload-digest.md).
When libcrypto is unavailable, `ResumableSha256.available()` is False and completion re-hashes the
stored bytes instead. Only SHA-256 is resumable; a sha512 upload is hashed from its stored bytes
when it completes (`digest_chunks`)."""

import ctypes
import ctypes.util
import hashlib

CTX_SIZE = 112  # sizeof(SHA256_CTX): h[8], Nl, Nh, data[16], num, md_len — 28 unsigned ints
_lib = None


def _libcrypto():
    global _lib
    if _lib is None:
        name = ctypes.util.find_library("crypto")
        lib = ctypes.CDLL(name) if name else None
        if lib is not None and all(hasattr(lib, f) for f in ("SHA256_Init", "SHA256_Update", "SHA256_Final")):
            lib.SHA256_Update.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
            lib.SHA256_Final.argtypes = [ctypes.c_char_p, ctypes.c_void_p]
            lib.SHA256_Init.argtypes = [ctypes.c_void_p]
            _lib = lib
        else:
            _lib = False
    return _lib or None


class ResumableSha256:
    def __init__(self, state: bytes = b""):
        lib = _libcrypto()
        if lib is None:
            raise RuntimeError("libcrypto is not available for resumable hashing")
        self._lib = lib
        if state:
            if len(state) != CTX_SIZE:
                raise ValueError("not a saved SHA-256 state")
            self._ctx = ctypes.create_string_buffer(bytes(state), CTX_SIZE)
        else:
            self._ctx = ctypes.create_string_buffer(CTX_SIZE)
            lib.SHA256_Init(self._ctx)

    @staticmethod
    def available() -> bool:
        return _libcrypto() is not None

    def update(self, data) -> None:
        if isinstance(data, bytes):
            self._lib.SHA256_Update(self._ctx, data, len(data))
            return
        view = memoryview(data).cast("B")
        if not view.nbytes:
            return
        if view.readonly:
            view = memoryview(bytes(view))
            self._lib.SHA256_Update(self._ctx, view.obj, len(view))
            return
        # A writable buffer (the socket reader's block) is hashed in place, without a copy.
        self._lib.SHA256_Update(self._ctx, ctypes.addressof(ctypes.c_char.from_buffer(view)), len(view))

    def state(self) -> bytes:
        return self._ctx.raw

    def hexdigest(self) -> str:
        # Finalise a copy, so the object stays usable (and its saved state valid).
        ctx = ctypes.create_string_buffer(self._ctx.raw, CTX_SIZE)
        out = ctypes.create_string_buffer(32)
        self._lib.SHA256_Final(out, ctx)
        return out.raw.hex()


def new_hasher(state: bytes = b""):
    """A resumable hasher when possible, else hashlib's (then `state` must be empty)."""
    if ResumableSha256.available():
        return ResumableSha256(state)
    if state:
        raise ValueError("a saved hash state cannot be resumed without libcrypto")
    return hashlib.sha256()


def saved_state(hasher) -> bytes:
    return hasher.state() if isinstance(hasher, ResumableSha256) else b""


# The algorithms a digest may name here, by the prefix it carries (registry/reference.py).
ALGORITHMS = {"sha256": hashlib.sha256, "sha512": hashlib.sha512}


def algorithm_of(digest: str) -> str:
    algorithm = digest.partition(":")[0]
    if algorithm not in ALGORITHMS:
        raise ValueError(f"unsupported digest algorithm {algorithm!r}")
    return algorithm


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{ALGORITHMS[algorithm](data).hexdigest()}"


def digest_chunks(chunks, algorithm: str) -> str:
    hasher = ALGORITHMS[algorithm]()
    for chunk in chunks:
        hasher.update(chunk)
    return f"{algorithm}:{hasher.hexdigest()}"
