"""Upload requests a test interrupts: a body that holds its request mid-upload while others run
(through the Django test client, each request in its own thread with its own database connection),
and a request whose serving process dies right after its store write."""

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from registry.models import Upload


class GatedBody:
    """A request body that stops after `pause_at` bytes until `go` is set, so a test can hold one
    request in the middle of its upload while another runs."""

    def __init__(self, data: bytes, pause_at: int):
        self.data, self.pos, self.pause_at = data, 0, pause_at
        self.paused, self.go = threading.Event(), threading.Event()

    def read(self, size: int = -1) -> bytes:
        if self.pos >= self.pause_at and not self.go.is_set():
            self.paused.set()
            assert self.go.wait(timeout=120), "the test never released this body"
        end = len(self.data) if size is None or size < 0 else self.pos + size
        if not self.go.is_set():
            end = min(end, self.pause_at)
        chunk = self.data[self.pos:end]
        self.pos += len(chunk)
        return chunk

    def readline(self, size: int = -1) -> bytes:  # part of the WSGI input interface; unused here
        return self.read(size)


def in_thread(pool: ThreadPoolExecutor, func, *args):
    def run():
        try:
            return func(*args)
        finally:
            connection.close()

    return pool.submit(run)


class Killed(Exception):
    """The process serving the request died here."""


def kill_after_write(monkeypatch, store_class, v2, location: str, data: bytes, content_range: str):
    """PATCH `data`, with the serving process dying right after the store write: no commit, and no
    cleanup (its lease stays until it expires)."""
    write = store_class.upload_write

    def write_then_die(self, upload, chunks, **kwargs):
        write(self, upload, chunks, **kwargs)
        raise Killed

    with monkeypatch.context() as died:
        died.setattr(store_class, "upload_write", write_then_die)
        died.setattr(Upload, "lease_release", lambda self, **kw: False, raising=False)
        with pytest.raises(Killed):
            v2.request("PATCH", location, data, HTTP_CONTENT_RANGE=content_range)
