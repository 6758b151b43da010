"""A request body read straight from gunicorn's client socket, in blocks of up to 1 MiB
(docs/decisions/0055-socket-body-reader.md).

skopeo and other Go clients stream a blob as one PATCH with `Transfer-Encoding: chunked` in 32 KiB
chunks. gunicorn's chunked reader turns each chunk into a Python generator step, a 32 KiB `recv()`
and several copies through BytesIO buffers; at four concurrent pushes on two cores that work, not
the hashing or the disk, is what the gateway spends its CPU on. Here the socket is read with
`recv_into` into one reusable buffer (a single call often brings in many chunks), the chunk framing
is parsed in place, and the payload is copied once into a second reusable buffer that the caller
gets as a memoryview: hashed and written in large blocks, with the GIL released for each.

This is used only when the body is untouched and gunicorn's objects are the ones this module
knows; anything else (Django's test client, another server, a body already started) reads through
`wsgi.input` as before. Framing rules are gunicorn's own: hex sizes, extensions checked with its
pattern, bounded size lines and trailer section, CRLF after each chunk. Bytes read past the end of
the body go back to gunicorn for the next request on the connection; after any error the
connection is closed rather than reused."""

import inspect
import io

from registry.errors import RegistryError

BLOCK_BYTES = 1024 * 1024
SIZE_LINE_LIMIT = 8190  # gunicorn's default limit_request_field_size
TRAILER_LIMIT = 8190 * 32
# A payload read at least this big goes from the socket straight into the output block.
DIRECT_READ_BYTES = 64 * 1024
HEX_DIGITS = frozenset(b"0123456789abcdefABCDEF")

try:
    from gunicorn.http.body import CHUNK_EXT_RE, Body, ChunkedReader, LengthReader
    from gunicorn.http.unreader import SocketUnreader
except ImportError:  # gunicorn is not installed, or changed shape: always the WSGI stream
    Body = None


class BodyError(RegistryError):
    def __init__(self, message: str):
        super().__init__("BLOB_UPLOAD_INVALID", message, status=400)


def socket_body(environ):
    """A `SocketBody` for this request, or None when the body must be read through `wsgi.input`."""
    body, sock = environ.get("wsgi.input"), environ.get("gunicorn.socket")
    # `Body.failed` (gunicorn 23 on) is what makes gunicorn close a connection whose body read
    # failed; without it the next request could be parsed from the middle of this body.
    if Body is None or sock is None or type(body) is not Body or not hasattr(body, "failed") or body.buf.tell():
        return None
    reader = body.reader
    if type(reader) is ChunkedReader:
        parser = reader.parser
        if reader.buf.tell() or parser is None or inspect.getgeneratorstate(parser) != inspect.GEN_CREATED:
            return None
        unreader, length = reader.req.unreader, None
    elif type(reader) is LengthReader:
        unreader, length = reader.unreader, reader.length
    else:
        return None
    if type(unreader) is not SocketUnreader or unreader.sock is not sock:
        return None
    return SocketBody(body, unreader, length)


class SocketBody:
    """Iterates over the body as memoryviews of one reused buffer: each is valid only until the
    next is asked for (hash it, write it or copy it, but do not keep it)."""

    def __init__(self, body, unreader, length: int | None):
        self._body, self._unreader, self._length = body, unreader, length
        self._sock = unreader.sock
        held = unreader.buf.getvalue()  # what gunicorn read past the headers
        unreader.buf = io.BytesIO()
        # A sized body is received straight into the output block: the raw buffer only holds what
        # gunicorn read ahead. A chunked one is received into the raw buffer, framing and all.
        self._raw = bytearray(held) if length is not None else bytearray(max(BLOCK_BYTES, len(held)))
        self._view = memoryview(self._raw)
        self._raw[: len(held)] = held
        self._lo, self._hi = 0, len(held)
        self._out = memoryview(bytearray(BLOCK_BYTES if length is None else min(BLOCK_BYTES, max(length, 1))))
        self.received = 0

    def __iter__(self):
        try:
            yield from (self._chunked() if self._length is None else self._sized(self._length))
        except BaseException:
            # Where the next request on this connection starts is unknown: gunicorn closes it.
            self._body.failed = True
            raise
        self._give_back()

    # --- raw bytes ---

    def _fill(self) -> None:
        """Receive more raw bytes after the unparsed ones (moved to the front when needed)."""
        if self._lo == self._hi:
            self._lo = self._hi = 0
        elif self._hi == len(self._raw):
            kept = self._hi - self._lo
            self._raw[:kept] = bytes(self._view[self._lo:self._hi])  # a partial size line: small
            self._lo, self._hi = 0, kept
        got = self._sock.recv_into(self._view[self._hi:])
        if not got:
            raise BodyError("the request body ended before its last chunk")
        self._hi += got

    def _give_back(self) -> None:
        """Leave gunicorn's reader finished, with any bytes of a next request back in its buffer."""
        if self._hi > self._lo:
            self._unreader.unread(bytes(self._view[self._lo:self._hi]))
        self._lo = self._hi = 0
        reader = self._body.reader
        if self._length is None:
            reader.parser = None
            reader.buf = io.BytesIO()
        else:
            reader.length = 0

    # --- Content-Length bodies ---

    def _sized(self, length: int):
        out, left = self._out, length
        while left:
            filled, want = 0, min(len(out), left)
            while filled < want:
                if self._hi > self._lo:  # bytes gunicorn read with the headers
                    n = min(want - filled, self._hi - self._lo)
                    out[filled:filled + n] = self._view[self._lo:self._lo + n]
                    self._lo += n
                else:
                    n = self._sock.recv_into(out[filled:want])
                    if not n:
                        if filled:
                            self.received += filled
                            yield out[:filled]
                        return  # short: the caller compares with Content-Length
                filled += n
            left -= filled
            self.received += filled
            yield out[:filled]

    # --- chunked bodies ---

    def _line(self, limit: int, what: str) -> bytes:
        while (end := self._raw.find(b"\r\n", self._lo, self._hi)) < 0 and self._hi - self._lo <= limit:
            self._fill()
        if end < 0 or end - self._lo > limit:
            raise BodyError(f"{what} is longer than {limit} bytes")
        line = bytes(self._view[self._lo:end])
        self._lo = end + 2
        return line

    def _chunk_size(self) -> int:
        line = self._line(SIZE_LINE_LIMIT, "a chunk size line")
        size, semicolon, extension = line.partition(b";")
        if semicolon:
            size = size.rstrip(b" \t")
            if b"\r" in extension or not CHUNK_EXT_RE.fullmatch(b";" + extension):
                raise BodyError("invalid chunk extension")
        if not size or len(size) > 16 or not HEX_DIGITS.issuperset(size):
            raise BodyError("invalid chunk size")
        return int(size, 16)

    def _crlf(self) -> None:
        while self._hi - self._lo < 2:
            self._fill()
        if self._view[self._lo:self._lo + 2] != b"\r\n":
            raise BodyError("a chunk is not followed by CRLF")
        self._lo += 2

    def _trailers(self) -> None:
        """Skip the trailer section (Train reads no trailer), up to its blank line."""
        size = 0
        while line := self._line(TRAILER_LIMIT, "the trailer section"):
            size += len(line) + 2
            if size > TRAILER_LIMIT or b"\n" in line:
                raise BodyError("invalid trailer section")

    def _chunked(self):
        out, filled = self._out, 0
        while size := self._chunk_size():
            while size:
                if self._hi > self._lo:
                    n = min(size, self._hi - self._lo, len(out) - filled)
                    out[filled:filled + n] = self._view[self._lo:self._lo + n]
                    self._lo += n
                else:
                    want = min(size, len(out) - filled)
                    if want < DIRECT_READ_BYTES:
                        self._fill()
                        continue
                    n = self._sock.recv_into(out[filled:filled + want])
                    if not n:
                        raise BodyError("the request body ended before its last chunk")
                size -= n
                filled += n
                if filled == len(out):
                    self.received += filled
                    yield out
                    filled = 0
            self._crlf()
        self._trailers()
        if filled:
            self.received += filled
            yield out[:filled]
