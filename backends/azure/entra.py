"""Entra ID tokens for Train's own multi-tenant app in a customer's tenant (the OAuth 2.0 client
credentials grant, one POST to `<authority>/<tenant>/oauth2/v2.0/token`).

The app's credential comes from Train's deployment settings, never from an account: a client secret,
a certificate (a signed client assertion), or a federated token file (workload identity federation:
the file holds a JWT Train's platform renews, presented as the client assertion). Tokens are cached
per (authority, tenant, app, scope) in the process until shortly before they expire.

Why not azure-identity here (decision 0076): it accepts https authorities only, so no emulator or test
fake can stand in for Entra ID, and Train needs nothing of it beyond this one grant.

With TRAIN_CLOUD_EMULATOR set, the authority is the emulator and the app is EMULATOR_CLIENT_ID with
EMULATOR_CLIENT_SECRET, the well-known credential every emulator tenant accepts (like Azurite's
well-known key), so an account configures azure-ml with its usual fields only.
"""

from __future__ import annotations

import base64
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import requests
from django.conf import settings

from backends.base import BackendError

EMULATOR_CLIENT_ID = "7e57c1a0-0000-4000-8000-00000000e1a0"
EMULATOR_CLIENT_SECRET = "train-emulator-secret"  # noqa: S105 (a fixed, public, emulator-only value)
ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
# Renew a token this long before it expires, so a request started with it is not refused mid-way.
EXPIRY_MARGIN_SECONDS = 300
ASSERTION_SECONDS = 600
TOKEN_TIMEOUT_SECONDS = (5, 30)


@dataclass(frozen=True)
class AppCredential:
    """Train's app and how it proves itself. Exactly one of secret, certificate_path, token_file."""

    authority: str
    client_id: str
    secret: str = ""
    certificate_path: str = ""
    token_file: str = ""

    @classmethod
    def from_settings(cls) -> AppCredential:
        if settings.TRAIN_CLOUD_EMULATOR:
            return cls(settings.TRAIN_CLOUD_EMULATOR, EMULATOR_CLIENT_ID, secret=EMULATOR_CLIENT_SECRET)
        credential = cls(settings.TRAIN_AZURE_AUTHORITY, settings.TRAIN_AZURE_CLIENT_ID,
                         secret=settings.TRAIN_AZURE_CLIENT_SECRET,
                         certificate_path=settings.TRAIN_AZURE_CLIENT_CERTIFICATE_PATH,
                         token_file=settings.TRAIN_AZURE_FEDERATED_TOKEN_FILE)
        if not credential.client_id or sum(map(bool, (credential.secret, credential.certificate_path,
                                                      credential.token_file))) != 1:
            raise BackendError("This deployment has no Azure credential: set TRAIN_AZURE_CLIENT_ID and one of "
                               "TRAIN_AZURE_CLIENT_SECRET, TRAIN_AZURE_CLIENT_CERTIFICATE_PATH or "
                               "TRAIN_AZURE_FEDERATED_TOKEN_FILE.", permanent=True)
        return credential

    def proof(self, token_url: str) -> dict:
        """The form fields that prove the app's identity to `token_url`."""
        if self.secret:
            return {"client_secret": self.secret}
        if self.token_file:
            assertion = Path(self.token_file).read_text().strip()  # re-read: the platform renews it
        else:
            assertion = _certificate_assertion(self.certificate_path, self.client_id, token_url)
        return {"client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion}


def _certificate_assertion(path: str, client_id: str, audience: str) -> str:
    """A client assertion signed with the app's certificate key (RS256, `x5t` its SHA-1 thumbprint)."""
    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    pem = Path(path).read_bytes()
    key = serialization.load_pem_private_key(pem, password=None)
    certificate = x509.load_pem_x509_certificate(pem)
    thumbprint = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA1())).decode().rstrip("=")  # noqa: S303
    now = int(time.time())
    claims = {"aud": audience, "iss": client_id, "sub": client_id, "jti": str(uuid.uuid4()),
              "nbf": now, "iat": now, "exp": now + ASSERTION_SECONDS}
    return jwt.encode(claims, key, algorithm="RS256", headers={"x5t": thumbprint})


_lock = threading.Lock()
_tokens: dict[tuple[str, str, str, str], tuple[str, float]] = {}


def entra_token(tenant_id: str, scope: str, *, fresh: bool = False) -> str:
    """An access token for `scope` as Train's app in `tenant_id` (cached unless `fresh`).
    BackendError: permanent when Entra ID refused the app (not consented, wrong tenant, bad secret)."""
    credential = AppCredential.from_settings()
    key = (credential.authority, tenant_id, credential.client_id, scope)
    with _lock:
        cached = _tokens.get(key)
    if cached and not fresh and cached[1] > time.time():
        return cached[0]
    url = f"{credential.authority}/{tenant_id}/oauth2/v2.0/token"
    form = {"grant_type": "client_credentials", "client_id": credential.client_id, "scope": scope,
            **credential.proof(url)}
    try:
        response = requests.post(url, data=form, timeout=TOKEN_TIMEOUT_SECONDS)
    except requests.RequestException as exc:
        raise BackendError(f"Entra ID could not be reached: {exc}") from exc
    if response.status_code != 200:
        raise BackendError(f"Entra ID refused Train's app {credential.client_id} in tenant {tenant_id} "
                           f"({response.status_code}): {_entra_message(response)}",
                           permanent=response.status_code in (400, 401, 403))
    try:
        body = response.json()
        token, lifetime = body["access_token"], float(body.get("expires_in", 3600))
    except (ValueError, KeyError, TypeError):
        raise BackendError("Entra ID answered without an access token.") from None
    with _lock:
        _tokens[key] = (token, time.time() + max(lifetime - EXPIRY_MARGIN_SECONDS, 30))
    return token


def _entra_message(response) -> str:
    try:
        body = response.json()
        return str(body.get("error_description") or body.get("error") or "")[:300]
    except ValueError:
        return response.text[:300]


def entra_tokens_clear() -> None:
    with _lock:
        _tokens.clear()
