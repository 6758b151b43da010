"""A fake of Google's and Azure's registry login flows, in front of a real Distribution registry that
checks real tokens (`auth: token`).

One HTTPS server on a loopback port (self-signed certificate, also the registry's token-signing
certificate) serves the cloud's token endpoints itself and forwards every other `/v2/` request to
Distribution, so the Bearer realm sits on the registry's own host, as on the real clouds.

Distribution 2.8 verifies a token's signature with the key of the certificate chain in its `x5c`
header, and checks that chain against `rootcertbundle`; so tokens are ES256 JWTs carrying the
self-signed certificate in `x5c`.

- gcp: the OAuth token endpoint (the JWT-bearer grant of Train's Application Default Credentials,
  a service-account key), IAM Credentials `generateAccessToken` (Bearer source token → service-account access
  token), and Artifact Registry's realm `/v2/token` (Basic `oauth2accesstoken:<access token>`).
- azure: Entra ID's `/<tenant>/oauth2/v2.0/token` (client credentials) and its OpenID metadata,
  ACR's `/oauth2/exchange` (Entra token → refresh token) and `/oauth2/token` (refresh token → registry
  token, as Basic or as a form).
Every token the fake issues lives `token_seconds`, and an expired one is refused.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import ssl
import threading
import time
from collections import Counter
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import parse_qs, parse_qsl, unquote, urlsplit

import jwt
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.support.distribution import distribution_process

ISSUER = "fake-cloud-registry-auth"
# google-auth signs the assertion for Google's token endpoint whatever token URI it posts it to.
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
ACR_USER = "00000000-0000-0000-0000-000000000000"
HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "host",
               "content-length"}


def self_signed(work: Path) -> tuple[Path, Path, ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake cloud")])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                                                        x509.IPAddress(ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = work / "fake-cloud.crt", work / "fake-cloud.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, key, cert


class RegistryAuthFake:
    """The fake's state: what it accepts, what it issued, what it refused."""

    def __init__(self, cloud: str, key, cert):
        self.cloud, self.key = cloud, key
        self.x5c = [base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()]
        self.lock = threading.Lock()
        self.token_seconds = 3600
        self.forward_delay_seconds = 0.0  # each forwarded /v2/ request waits this long (a slow copy)
        self.issued: dict[str, tuple[str, float, str]] = {}  # token -> (kind, expiry, subject)
        self.calls = Counter()  # operation -> requests
        self.refused = Counter()  # operation -> requests refused
        # gcp: Train's own service account (its Application Default Credentials sign a JWT assertion
        # with this key), and the service accounts it may impersonate.
        self.train_identity = "train@train-prod.iam.gserviceaccount.com"
        self.train_identity_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.train_identity_revoked = False
        self.service_accounts = {"train-mirror@acme-project.iam.gserviceaccount.com"}
        # azure: app registrations per tenant (tenant -> {client id: secret}).
        self.apps: dict[str, dict[str, str]] = {}
        self.base = self.upstream = self.service = ""

    def application_default_credentials(self) -> dict:
        """The service-account key file Train's ADC is read from, pointing at the fake's token URI."""
        pem = self.train_identity_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()).decode()
        return {"type": "service_account", "project_id": "train-prod", "private_key_id": "train-key-1",
                "private_key": pem, "client_email": self.train_identity, "client_id": "1",
                "token_uri": f"{self.base}/token"}

    def issue(self, kind: str, subject: str, token: str | None = None) -> tuple[str, float]:
        token = token or f"{kind}-{secrets.token_urlsafe(24)}"
        expiry = time.time() + self.token_seconds
        with self.lock:
            self.issued[token] = (kind, expiry, subject)
        return token, expiry

    def valid(self, token: str, kind: str) -> str | None:
        """The subject a live token of `kind` was issued to, else None."""
        with self.lock:
            kind_, expiry, subject = self.issued.get(token, ("", 0.0, ""))
        return subject if kind_ == kind and expiry > time.time() else None

    def issued_count(self, kind: str) -> int:
        with self.lock:
            return sum(1 for k, _e, _s in self.issued.values() if k == kind)

    def registry_jwt(self, subject: str, scopes: list[str], kind: str = "registry") -> dict:
        now = int(time.time())
        access = []
        for scope in (one for value in scopes for one in value.split()):  # a value may list several
            parts = scope.split(":")
            if len(parts) == 3 and parts[0] == "repository":
                access.append({"type": "repository", "name": parts[1], "actions": parts[2].split(",")})
        claims = {"iss": ISSUER, "sub": subject, "aud": self.service, "iat": now, "nbf": now - 1,
                  "exp": now + self.token_seconds, "jti": secrets.token_hex(8), "access": access}
        token = jwt.encode(claims, self.key, algorithm="ES256", headers={"x5c": self.x5c})
        self.issue(kind, subject, token)
        return {"token": token, "access_token": token, "expires_in": self.token_seconds}


def _basic(headers) -> tuple[str, str] | None:
    value = headers.get("Authorization", "")
    if not value.startswith("Basic "):
        return None
    try:
        user, _, password = base64.b64decode(value[6:]).decode().partition(":")
    except ValueError:
        return None
    return user, password


def _bearer(headers) -> str:
    value = headers.get("Authorization", "")
    return value[7:] if value.startswith("Bearer ") else ""


class Answer(Exception):
    def __init__(self, status: int, payload: dict):
        super().__init__(status)
        self.status, self.payload = status, payload


def _refuse(fake: RegistryAuthFake, operation: str, status: int = 401, message: str = "refused"):
    with fake.lock:
        fake.refused[operation] += 1
    raise Answer(status, {"error": {"code": status, "message": message}})


def google_oauth_token(fake, method, path, query, form, headers) -> dict:
    try:
        claims = jwt.decode(form.get("assertion", ""), fake.train_identity_key.public_key(), algorithms=["RS256"],
                            audience=GOOGLE_TOKEN_AUDIENCE, issuer=fake.train_identity)
    except jwt.InvalidTokenError:
        claims = None
    if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or claims is None \
            or fake.train_identity_revoked:
        _refuse(fake, "oauth_token", 400, "invalid_grant")
    token, _expiry = fake.issue("google-source", "train")
    return {"access_token": token, "expires_in": fake.token_seconds, "token_type": "Bearer"}


def generate_access_token(fake, method, path, query, form, headers) -> dict:
    if fake.valid(_bearer(headers), "google-source") is None:
        _refuse(fake, "generate_access_token", 401, "invalid source credentials")
    account = unquote(path.removeprefix("/v1/projects/-/serviceAccounts/").removesuffix(":generateAccessToken"))
    if account not in fake.service_accounts:
        _refuse(fake, "generate_access_token", 403, f"Permission 'iam.serviceAccounts.getAccessToken' "
                f"denied on {account}")
    token, expiry = fake.issue("google-access", account)
    expire_time = dt.datetime.fromtimestamp(expiry, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"accessToken": token, "expireTime": expire_time}


def artifact_registry_token(fake, method, path, query, form, headers) -> dict:
    user, password = _basic(headers) or ("", "")
    account = fake.valid(password, "google-access") if user == "oauth2accesstoken" else None
    if account is None:
        _refuse(fake, "registry_token")
    return fake.registry_jwt(account, query.get("scope", []))


def entra_metadata(fake, method, path, query, form, headers) -> dict:
    tenant = path.split("/")[1]
    root = f"{fake.base}/{tenant}"
    return {"issuer": f"{root}/v2.0", "token_endpoint": f"{root}/oauth2/v2.0/token",
            "authorization_endpoint": f"{root}/oauth2/v2.0/authorize",
            "device_authorization_endpoint": f"{root}/oauth2/v2.0/devicecode"}


def entra_token(fake, method, path, query, form, headers) -> dict:
    tenant = path.split("/")[1]
    client = form.get("client_id", "")
    if form.get("grant_type") != "client_credentials" or fake.apps.get(tenant, {}).get(client) is None \
            or fake.apps[tenant][client] != form.get("client_secret"):
        _refuse(fake, "entra_token", 401, "AADSTS7000215: Invalid client secret provided.")
    token, _expiry = fake.issue("entra", f"{tenant}/{client}")
    return {"access_token": token, "expires_in": fake.token_seconds, "ext_expires_in": fake.token_seconds,
            "token_type": "Bearer"}


def acr_exchange(fake, method, path, query, form, headers) -> dict:
    subject = fake.valid(form.get("access_token", ""), "entra")
    if form.get("grant_type") != "access_token" or form.get("service") != fake.service or subject is None \
            or not subject.startswith(f"{form.get('tenant')}/"):
        _refuse(fake, "acr_exchange")
    return {"refresh_token": fake.registry_jwt(subject, [], kind="acr-refresh")["token"]}


def acr_token(fake, method, path, query, form, headers) -> dict:
    if method == "POST":
        refresh, scopes = form.get("refresh_token", ""), form.get("scope", "").split()
        if form.get("grant_type") != "refresh_token":
            refresh = ""
    else:
        user, refresh = _basic(headers) or ("", "")
        refresh, scopes = (refresh if user == ACR_USER else ""), query.get("scope", [])
    subject = fake.valid(refresh, "acr-refresh")
    if subject is None:
        _refuse(fake, "registry_token")
    return fake.registry_jwt(subject, scopes)


ROUTES = {
    "gcp": [("POST", "/token", google_oauth_token), ("POST", ":generateAccessToken", generate_access_token),
            ("GET", "/v2/token", artifact_registry_token)],
    "azure": [("GET", "/.well-known/openid-configuration", entra_metadata),
              ("POST", "/oauth2/v2.0/token", entra_token), ("POST", "/oauth2/exchange", acr_exchange),
              ("GET", "/oauth2/token", acr_token), ("POST", "/oauth2/token", acr_token)],
}
REALM_PATHS = {"gcp": "/v2/token", "azure": "/oauth2/token"}


def _route(fake: RegistryAuthFake, method: str, path: str):
    for route_method, suffix, handler in ROUTES[fake.cloud]:
        if method == route_method and (path == suffix or (not suffix.startswith("/v2/") and path.endswith(suffix))):
            return handler
    return None


def _handler(fake: RegistryAuthFake):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _reply(self, status: int, body: bytes, headers=()):
            self.send_response(status)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _serve(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            parts = urlsplit(self.path)
            handler = _route(fake, self.command, parts.path)
            if handler is None:
                return self._forward(body)
            with fake.lock:
                fake.calls[handler.__name__] += 1
            form = dict(parse_qsl(body.decode())) if b"=" in body else {}
            try:
                payload, status = handler(fake, self.command, parts.path, parse_qs(parts.query), form,
                                          self.headers), 200
            except Answer as answer:
                payload, status = answer.payload, answer.status
            self._reply(status, json.dumps(payload).encode(), [("Content-Type", "application/json")])

        def _forward(self, body: bytes):
            if fake.forward_delay_seconds:
                time.sleep(fake.forward_delay_seconds)  # the fake is slow on purpose: a copy outlives tokens
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
            upstream = requests.request(self.command, fake.upstream + self.path, headers=headers,
                                        data=body or None, allow_redirects=False, timeout=120)
            out = []
            for key, value in upstream.headers.items():
                if key.lower() in HOP_HEADERS:
                    continue
                if key.lower() == "location" and value.startswith(fake.upstream):
                    value = fake.base + value[len(fake.upstream):]
                out.append((key, value))
            if self.command == "HEAD":
                out.append(("Content-Length", upstream.headers.get("Content-Length", "0")))
                self.send_response(upstream.status_code)
                for key, value in out:
                    self.send_header(key, value)
                self.end_headers()
                return
            self._reply(upstream.status_code, upstream.content, out)

        do_GET = do_HEAD = do_PUT = do_PATCH = do_POST = do_DELETE = _serve

    return Handler


def _token_auth(fake: RegistryAuthFake, cert_path: Path) -> str:
    """Distribution's `auth: token` block: tokens from the fake's realm, verified with its certificate."""
    return (f"auth:\n  token:\n    realm: {fake.base}{REALM_PATHS[fake.cloud]}\n    service: {fake.service}\n"
            f"    issuer: {ISSUER}\n    rootcertbundle: {cert_path}\n")


@contextmanager
def registry_auth_fake(work: Path, cloud: str):
    """The fake for `cloud` ("gcp" or "azure") fronting a token-auth Distribution registry. Yields the
    RegistryAuthFake (`.base`: the HTTPS URL of registry and token endpoints; `.ca_bundle`: the
    certificate clients must trust)."""
    work.mkdir(parents=True, exist_ok=True)
    cert_path, key_path, key, cert = self_signed(work)
    fake = RegistryAuthFake(cloud, key, cert)
    fake.ca_bundle = cert_path
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(fake))
    server.daemon_threads = True
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    fake.service = f"127.0.0.1:{server.server_address[1]}"
    fake.base = f"https://{fake.service}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        with distribution_process(work, auth=_token_auth(fake, cert_path)) as upstream:
            fake.upstream = upstream
            yield fake
    finally:
        server.shutdown()
        server.server_close()


def pulled_digest(fake: RegistryAuthFake, repository: str, reference: str, subject: str = "verifier") -> str:
    """The digest Distribution serves for `repository:reference`, read with a token the fake signs."""
    token = fake.registry_jwt(subject, [f"repository:{repository}:pull"])["token"]
    accept = "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json"
    response = requests.get(f"{fake.upstream}/v2/{repository}/manifests/{reference}", timeout=30,
                            headers={"Authorization": f"Bearer {token}", "Accept": accept})
    assert response.status_code == 200, response.text
    return response.headers["Docker-Content-Digest"]
