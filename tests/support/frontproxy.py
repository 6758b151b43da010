"""A front for a real registry: forwards every request to it, and can answer some with injected
429/503 errors first (seeded, so a failure can be replayed). It counts what reached the registry, so a
test can say "exactly one blob was uploaded" from the target's side, not the client's."""

import random
import threading
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import requests

HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authorization"}


class Front:
    def __init__(self, upstream: str, *, fault_rate: float = 0.0, seed: int = 0):
        self.upstream = upstream.rstrip("/")
        self.fault_rate = fault_rate
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.forwarded = Counter()  # (method, kind) -> requests that reached the registry
        self.paths: list[str] = []  # every path that reached it, in order
        self.bytes_uploaded = 0
        self.faults = 0
        self.base = ""

    def kind(self, path: str) -> str:
        if "/blobs/uploads/" in path:
            return "upload"
        if "/blobs/" in path:
            return "blob"
        if "/manifests/" in path:
            return "manifest"
        return "other"

    def inject(self) -> int | None:
        with self.lock:
            if self.random.random() < self.fault_rate:
                self.faults += 1
                return self.random.choice([429, 500, 502, 503])
        return None


def _handler(front: Front):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _relay(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            if (status := front.inject()) is not None:
                self.send_response(status)
                self.send_header("Content-Length", "0")
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                return
            dropped = HOP_HEADERS | {"host", "content-length"}
            headers = {k: v for k, v in self.headers.items() if k.lower() not in dropped}
            upstream = requests.request(self.command, front.upstream + self.path, headers=headers, data=body or None,
                                        allow_redirects=False, timeout=120)
            with front.lock:
                front.forwarded[(self.command, front.kind(self.path))] += 1
                front.paths.append(self.path)
                if self.command in ("PUT", "PATCH") and front.kind(self.path) == "upload":
                    front.bytes_uploaded += len(body)
            self.send_response(upstream.status_code)
            for key, value in upstream.headers.items():
                if key.lower() in HOP_HEADERS or key.lower() == "content-length":
                    continue
                if key.lower() == "location" and value.startswith(front.upstream):
                    value = front.base + value[len(front.upstream):]
                self.send_header(key, value)
            content = b"" if self.command == "HEAD" else upstream.content
            self.send_header("Content-Length", upstream.headers.get("Content-Length", str(len(content)))
                             if self.command == "HEAD" else str(len(content)))
            self.end_headers()
            self.wfile.write(content)

        do_GET = do_HEAD = do_PUT = do_PATCH = do_POST = do_DELETE = _relay

    return Handler


@contextmanager
def front(upstream: str, **options):
    """A Front on a free loopback port; yields it with `.base` set to its URL."""
    state = Front(upstream, **options)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    server.daemon_threads = True
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
