"""Request bodies a test controls, for holding one request mid-upload while others run (through the
Django test client, each request in its own thread with its own database connection)."""

import threading
from concurrent.futures import ThreadPoolExecutor

from django.db import connection


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
