"""The cloud-agnostic part of the fake cloud: the HTTP server, fault injection, call counting and a
forwarding fallback.

A request goes to the first registered handler that `matches` it; the handler names the operation
and the resource (a job name) it concerns, which is what the call counters and the fault plan see.
Faults are drawn from `random.Random(seed)`, so a failing run replays with the seed it prints.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol
from urllib.parse import parse_qsl, urlsplit

FAULT_KINDS = ("throttle", "server_error", "timeout", "timeout_after_apply")


@dataclass
class FakeRequest:
    method: str
    path: str
    query: dict
    headers: dict
    body: bytes

    def json(self) -> dict:
        return json.loads(self.body or b"{}")

    def form(self) -> dict:
        return dict(parse_qsl(self.body.decode()))


@dataclass
class FakeResponse:
    status: int
    body: bytes = b""
    headers: dict = field(default_factory=dict)
    # Called once the answer was written to the caller (not for an answer an injected timeout drops).
    on_delivery: object = None

    @classmethod
    def json(cls, status: int, payload: dict, content_type: str = "application/json") -> FakeResponse:
        return cls(status, json.dumps(payload, default=str).encode(), {"Content-Type": content_type})


class DeliveryLog:
    """For a cloud's fake: when each job's record reached a caller (answers an injected timeout dropped
    do not count), which the invariants read to check that Train records an outcome within two answers.
    `dispatch` collects the keys an answer shows and sets `on_delivery` to `_record_delivery` of them."""

    def _init_deliveries(self) -> None:
        self.observed: dict[str, list[float]] = {}  # key -> when a caller received the job's record
        self._observed_lock = threading.Lock()

    def _record_delivery(self, keys: list[str]) -> None:
        now = time.time()
        with self._observed_lock:
            for key in keys:
                self.observed.setdefault(key, []).append(now)

    def deliveries_between(self, key: str, start: float, end: float) -> int:
        """How many answers carrying the job's record reached a caller in [start, end]."""
        with self._observed_lock:
            return sum(start <= moment <= end for moment in self.observed.get(key, []))


class CloudHandler(Protocol):
    """One cloud's fake. `dispatch` runs under the cloud's lock; `gate` runs before it, unlocked, so
    a test can hold a request at a barrier without stopping the rest of the fake."""

    name: str

    def matches(self, request: FakeRequest) -> bool: ...
    def operation(self, request: FakeRequest) -> tuple[str, str]: ...
    def gate(self, operation: str, resource: str) -> None: ...
    def dispatch(self, operation: str, request: FakeRequest) -> FakeResponse: ...
    def fault(self, kind: str) -> FakeResponse: ...


@dataclass
class FaultPlan:
    """Rates per fault kind (0..1, drawn once per request), limited to some operations if given."""

    seed: int = 0
    rates: dict = field(default_factory=dict)
    operations: frozenset | None = None

    def __post_init__(self):
        unknown = set(self.rates) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds {unknown}; use {FAULT_KINDS}")
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()
        self.injected = Counter()

    def draw(self, operation: str) -> str | None:
        if self.operations is not None and operation not in self.operations:
            return None
        with self.lock:
            roll = self.rng.random()
            for kind in FAULT_KINDS:
                rate = self.rates.get(kind, 0)
                if roll < rate:
                    self.injected[(kind, operation)] += 1
                    return kind
                roll -= rate
        return None


class FakeCloud:
    """The server. Use as a context manager; `url` is its base URL (127.0.0.1 and `port`, a free one
    by default). `closers` run at `stop`, after the server: whatever a handler started for it (moto)."""

    def __init__(self, *, seed: int = 0, timeout_seconds: float = 3.0, port: int = 0):
        self.port = port
        self.closers: list = []
        self.handlers: list[CloudHandler] = []
        self.fallback_url = ""
        # (path prefix, base URL): requests under the prefix are passed there before any handler sees
        # them, outside the lock (the standalone's registry: /v2/ to a Distribution registry).
        self.routes: list[tuple[str, str]] = []
        self.faults = FaultPlan(seed=seed)
        self.timeout_seconds = timeout_seconds  # a "timeout" holds the answer this long, then hangs up
        self.lock = threading.RLock()
        self.calls = Counter()  # (cloud, operation) -> count
        self.resource_calls = Counter()  # (cloud, operation, resource) -> count
        self.forwarded: list[dict] = []  # requests passed to the fallback, decoded for assertions
        self.server: ThreadingHTTPServer | None = None

    def add(self, handler):
        self.handlers.append(handler)
        return handler

    def set_faults(self, *, seed: int | None = None, operations=None, **rates) -> FaultPlan:
        self.faults = FaultPlan(seed=self.faults.seed if seed is None else seed, rates=rates,
                                operations=frozenset(operations) if operations else None)
        return self.faults

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeCloud:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), _HTTPHandler)
        self.server.daemon_threads = True
        self.server.cloud = self
        threading.Thread(target=self.server.serve_forever, name="fakecloud", daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        while self.closers:
            self.closers.pop()()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    # --- one request ------------------------------------------------------------------------------
    def handle(self, request: FakeRequest) -> FakeResponse | None:
        """The answer, or None to hang up without one (an injected timeout)."""
        for prefix, url in self.routes:
            if request.path.startswith(prefix):
                return self._forward(request, url, record=False)
        handler = next((h for h in self.handlers if h.matches(request)), None)
        if handler is None:
            return self._forward(request)
        operation, resource = handler.operation(request)
        with self.lock:
            self.calls[(handler.name, operation)] += 1
            self.resource_calls[(handler.name, operation, resource)] += 1
        kind = self.faults.draw(operation)
        if kind in ("throttle", "server_error"):
            return handler.fault(kind)
        if kind == "timeout":
            time.sleep(self.timeout_seconds)
            return None
        handler.gate(operation, resource)
        with self.lock:
            response = handler.dispatch(operation, request)
        if kind == "timeout_after_apply":
            time.sleep(self.timeout_seconds)  # applied, but the caller never hears so
            return None
        return response

    def _forward(self, request: FakeRequest, url: str = "", *, record: bool = True) -> FakeResponse:
        url = url or self.fallback_url
        if not url:
            return FakeResponse.json(501, {"message": f"no fake handles {request.method} {request.path}"})
        if record:
            decoded = request.form() if b"Action=" in request.body[:200] else {}
            with self.lock:
                self.forwarded.append({"target": request.headers.get("X-Amz-Target", ""), **decoded})
        target = urlsplit(url)
        conn = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
        try:
            headers = {k: v for k, v in request.headers.items() if k.lower() not in ("host", "connection")}
            path = request.path + (f"?{_encode(request.query)}" if request.query else "")
            conn.request(request.method, path, body=request.body, headers=headers)
            answer = conn.getresponse()
            body = answer.read()
            dropped = ("connection", "transfer-encoding", "server", "date")
            # A HEAD answer has no body but says how long the GET's would be: keep that length.
            dropped += () if request.method == "HEAD" else ("content-length",)
            keep = {k: v for k, v in answer.getheaders() if k.lower() not in dropped}
            return FakeResponse(answer.status, body, keep)
        finally:
            conn.close()


def _encode(query: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(query)


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as SDK connection pools expect
    # Headers and body go out in two writes; with Nagle's algorithm each answer would wait ~40 ms
    # for the client's delayed ACK.
    disable_nagle_algorithm = True

    def _serve(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        request = FakeRequest(self.command, parts.path, dict(parse_qsl(parts.query)), dict(self.headers.items()), body)
        response = self.server.cloud.handle(request)
        if response is None:
            self.close_connection = True
            return
        self.send_response(response.status)
        for key, value in response.headers.items():
            self.send_header(key, value)
        if not any(key.lower() == "content-length" for key in response.headers):
            self.send_header("Content-Length", str(len(response.body)))
        self.send_header("x-amzn-RequestId", "fake-request")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        self.wfile.flush()
        if response.on_delivery is not None:
            response.on_delivery()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _serve

    def log_message(self, *args):  # quiet: the tests print the fake's counters when they fail
        pass
