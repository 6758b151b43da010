"""A minimal ECR API at the HTTP layer, for what moto cannot be made to answer: GetAuthorizationToken
with a chosen `expiresAt` (moto's is always 2015-01-01) or `proxyEndpoint`, and refusals. Speaks the
JSON 1.1 protocol botocore uses for ECR; counts each call by operation."""

import base64
import json
import threading
from collections import Counter
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TARGET_PREFIX = "AmazonEC2ContainerRegistry_V20150921."


class FakeEcr:
    def __init__(self, *, password: str, expires_at: datetime, proxy_endpoint: str):
        self.password, self.expires_at, self.proxy_endpoint = password, expires_at, proxy_endpoint
        self.calls: Counter[str] = Counter()
        self.refuse: dict[str, str] = {}  # operation -> error code answered with 400
        self.tokens_issued = 0

    def answer(self, operation: str) -> tuple[int, dict]:
        self.calls[operation] += 1
        if code := self.refuse.get(operation):
            return 400, {"__type": code, "message": f"{operation} refused by the test"}
        if operation == "GetAuthorizationToken":
            self.tokens_issued += 1
            token = base64.b64encode(f"AWS:{self.password}".encode()).decode()
            return 200, {"authorizationData": [{"authorizationToken": token, "proxyEndpoint": self.proxy_endpoint,
                                                "expiresAt": self.expires_at.timestamp()}]}
        if operation == "CreateRepository":
            return 200, {"repository": {"repositoryName": "created"}}
        return 400, {"__type": "InvalidParameterException", "message": f"{operation} is not faked"}


@contextmanager
def fake_ecr(**options):
    """A FakeEcr served on a free loopback port: yields (fake, base URL)."""
    fake = FakeEcr(**options)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            operation = self.headers.get("X-Amz-Target", "").removeprefix(TARGET_PREFIX)
            status, body = fake.answer(operation)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield fake, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
