"""Registry bearer tokens: ES256-signed JWTs with a pinned algorithm, bound to this service (`aud`),
the account (`sub`), the API key that asked (`key`), and per-repository actions (`access`).

Every gateway must sign with the same key, or a token issued by one is refused by the next. The key
is the PEM in TRAIN_REGISTRY_SIGNING_KEY_PEM, or else the file TRAIN_REGISTRY_SIGNING_KEY. Production
refuses to start without one; development creates the file once, atomically, so concurrent first
requests agree on one key (docs/decisions/0035-registry-signing-key-is-provided.md)."""

import hashlib
import os
import secrets
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils import timezone

ALGORITHM = "ES256"
ISSUER = "train"
LEEWAY_SECONDS = 60  # as distribution's verifier (registry/auth/token/token.go)
REQUIRED_CLAIMS = ["exp", "iat", "nbf", "aud", "iss", "sub", "jti"]
# API key ids start at 1. A token whose `key` is 0 was minted by Train itself for one job's image pull
# (`pull_token_issue`): no key stands behind it, it grants `pull` on one repository, and it is never
# renewed past its own expiry.
PULL_TOKEN_KEY = 0


class InvalidToken(Exception):
    pass


@dataclass(frozen=True)
class TokenClaims:
    account_id: str
    key_pk: int
    access: dict[str, frozenset[str]]  # "repository:<name>" / "registry:catalog" → actions
    expires_at: int = 0  # the `exp` claim (seconds since the epoch)

    @property
    def is_pull_token(self) -> bool:
        return self.key_pk == PULL_TOKEN_KEY


def _create_key_file(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".signing-key-")
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, pem)
        os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process created the key first; theirs wins
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp)


def load_signing_key(pem: bytes, *, origin: str):
    """The ES256 private key in `pem`; ImproperlyConfigured naming `origin` for anything else."""
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(f"{origin}: not an unencrypted PEM private key ({exc})") from exc
    if not isinstance(private, ec.EllipticCurvePrivateKey) or not isinstance(private.curve, ec.SECP256R1):
        raise ImproperlyConfigured(f"{origin}: ES256 needs an EC P-256 (prime256v1) private key")
    return private


def _signing_pem(pem_text: str, path_text: str, create: bool) -> tuple[bytes, str]:
    if pem_text:
        return pem_text.encode(), "TRAIN_REGISTRY_SIGNING_KEY_PEM"
    path = Path(path_text)
    if not path.exists():
        if not create:
            raise ImproperlyConfigured(f"TRAIN_REGISTRY_SIGNING_KEY: {path} does not exist (production never "
                                       "creates the signing key: every gateway must share one)")
        _create_key_file(path)
    return path.read_bytes(), f"TRAIN_REGISTRY_SIGNING_KEY ({path})"


@cache
def _keys(pem_text: str, path_text: str, create: bool):
    pem, origin = _signing_pem(pem_text, path_text, create)
    private = load_signing_key(pem, origin=origin)
    public = private.public_key()
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public, hashlib.sha256(der).hexdigest()[:16]


def signing_keys():
    return _keys(settings.TRAIN_REGISTRY_SIGNING_KEY_PEM, str(settings.TRAIN_REGISTRY_SIGNING_KEY),
                 settings.TRAIN_REGISTRY_SIGNING_KEY_CREATE)


def access_claim(access: dict[str, frozenset[str]]) -> list[dict]:
    claim = []
    for resource, actions in sorted(access.items()):
        kind, _, name = resource.partition(":")
        claim.append({"type": kind, "name": name, "actions": sorted(actions)})
    return claim


def token_issue(*, account_id: str, key_pk: int, access: dict[str, frozenset[str]],
                not_after: int | None = None) -> tuple[str, int, str]:
    """Sign a token; returns (token, expires_in seconds, issued_at RFC 3339). `not_after` (seconds
    since the epoch) caps its expiry."""
    private, _, kid = signing_keys()
    now = timezone.now()
    ttl = settings.TRAIN_REGISTRY_TOKEN_TTL_SECONDS
    if not_after is not None:
        ttl = max(0, min(ttl, not_after - int(now.timestamp())))
    claims = {
        "iss": ISSUER, "sub": account_id, "aud": settings.TRAIN_REGISTRY_SERVICE, "key": key_pk,
        "iat": now, "nbf": now, "exp": now + timezone.timedelta(seconds=ttl), "jti": secrets.token_urlsafe(16),
        "access": access_claim(access),
    }
    token = jwt.encode(claims, private, algorithm=ALGORITHM, headers={"kid": kid})
    return token, ttl, now.strftime("%Y-%m-%dT%H:%M:%SZ")


def token_verify(token: str) -> TokenClaims:
    """Check signature (ES256 only, server key only), issuer, audience and times; return the claims."""
    _, public, _ = signing_keys()
    try:
        claims = jwt.decode(
            token, public, algorithms=[ALGORITHM], audience=settings.TRAIN_REGISTRY_SERVICE, issuer=ISSUER,
            leeway=LEEWAY_SECONDS, options={"require": REQUIRED_CLAIMS},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc)) from exc
    if not isinstance(claims.get("key"), int) or not isinstance(claims.get("access"), list):
        raise InvalidToken("token lacks the key or access claim")
    access: dict[str, frozenset[str]] = {}
    for entry in claims["access"]:
        if not isinstance(entry, dict):
            raise InvalidToken("malformed access claim")
        resource = f"{entry.get('type')}:{entry.get('name')}"
        access[resource] = access.get(resource, frozenset()) | frozenset(map(str, entry.get("actions") or ()))
    return TokenClaims(account_id=str(claims["sub"]), key_pk=claims["key"], access=access,
                       expires_at=int(claims["exp"]))


def pull_token_issue(*, account_id: str, repository: str) -> tuple[str, int, str]:
    """A short-lived token that lets a container engine pull `repository` (`<account>/<path>`) and
    nothing else, for a job Train runs itself (the local backend)."""
    return token_issue(account_id=account_id, key_pk=PULL_TOKEN_KEY,
                       access={f"repository:{repository}": frozenset({"pull"})})
