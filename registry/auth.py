"""Who is calling the registry and what they may do.

One ceiling decides every path — Basic on /v2, Basic on the token endpoint, the OAuth2 form POST, and
Bearer tokens (re-checked on each request, so a revoked key or a removed membership stops working
within the token's lifetime): a repository is reachable only inside the caller's account, viewers
only pull, and only admins delete (docs/decisions/0022-registry-scope-ceiling.md)."""

import base64
import binascii
import ipaddress
import logging
import re
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from registry.errors import RegistryError
from registry.names import account_of
from registry.reference import NAME_MAX_LENGTH, REPOSITORY_RE
from registry.tokens import InvalidToken, token_verify
from trainsvc.accounts.models import (
    ACCOUNT_ID_MAX_LENGTH,
    ACCOUNT_ID_RE,
    KEY_ID_ALPHABET,
    KEY_ID_LENGTH,
    KEY_PREFIX,
    ApiKey,
    Membership,
    Role,
)
from trainsvc.clientip import client_ip

log = logging.getLogger(__name__)

ALL_ACTIONS = frozenset({"pull", "push", "delete"})
ROLE_ACTIONS = {
    Role.VIEWER: frozenset({"pull"}),
    Role.MEMBER: frozenset({"pull", "push"}),
    Role.ADMIN: ALL_ACTIONS,
}
CATALOG = "registry:catalog"
# The key id of anything shaped like an API key, right or wrong: what failed logins are counted by.
KEY_ID_RE = re.compile(rf"\A{KEY_PREFIX}_([{KEY_ID_ALPHABET}]{{{KEY_ID_LENGTH}}})_")
MAX_SCOPES = 20  # a login asks for a handful; more is noise or abuse


@dataclass(frozen=True)
class Caller:
    account_id: str
    key: ApiKey | None  # None for a pull token Train minted for one of its own jobs
    role: str
    # The token's grants; None when the caller sent Basic credentials on this request.
    token_access: dict[str, frozenset[str]] | None

    @property
    def actor(self) -> str:
        if self.key is None:
            return "Train (a job's image pull)"
        return f"{self.key.user.get_username()} (key {self.key.key_id})"


class LoginRefused(Exception):
    def __init__(self, retry_after: int = 0):
        super().__init__("login refused")
        self.retry_after = retry_after


def ceiling(*, account_id: str, role: str, resource: str) -> frozenset[str]:
    """The most a member with `role` in `account_id` may ever be granted on `resource`."""
    if resource == CATALOG:
        return frozenset({"*"})
    kind, _, name = resource.partition(":")
    if kind != "repository" or len(name) > NAME_MAX_LENGTH or not REPOSITORY_RE.match(name) or "/" not in name:
        return frozenset()
    if account_of(name) != account_id:
        return frozenset()
    return ROLE_ACTIONS.get(role, frozenset())


def scopes_parse(values) -> dict[str, frozenset[str]]:
    """`repository:<name>:<actions>` / `registry:catalog:*` items (repeated, or space-separated).
    Malformed items and unknown types are dropped, not errors: the grant is simply smaller."""
    requested: dict[str, frozenset[str]] = {}
    items = [item for value in values for item in value.split()][:MAX_SCOPES]
    for item in items:
        parts = item.split(":")
        if len(parts) != 3:
            continue
        kind, name, actions = parts
        wanted = frozenset(a for a in actions.split(",") if a)
        if kind == "repository":
            wanted = ALL_ACTIONS if "*" in wanted else wanted & ALL_ACTIONS
        elif (kind, name) == ("registry", "catalog") and "*" in wanted:
            wanted = frozenset({"*"})
        else:
            continue
        resource = f"{kind}:{name}"
        requested[resource] = requested.get(resource, frozenset()) | wanted
    return requested


def scopes_grant(*, account_id: str, role: str, requested: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    granted = {}
    for resource, actions in requested.items():
        allowed = actions & ceiling(account_id=account_id, role=role, resource=resource)
        if allowed:
            granted[resource] = allowed
    return granted


def scope_string(granted: dict[str, frozenset[str]]) -> str:
    return " ".join(f"{resource}:{','.join(sorted(actions))}" for resource, actions in sorted(granted.items()))


# --- failed logins: counters per presented key id and per client address ---------------------------
# A correct key always logs in: the counters are read only once the credentials have failed, so no
# number of wrong guesses by anyone can lock a key's owner out. Sources are bounded: one row per key
# id that exists and one per client address (an IPv6 /64, which one host can hold whole); the username
# is never a key, so made-up account ids create no rows (docs/decisions/0034-login-limit-per-key-and-address.md).

def _address_source(address: str) -> str:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return "addr:unknown"
    if ip.version == 6:
        return f"addr:{ipaddress.ip_network(f'{ip}/64', strict=False)}"
    return f"addr:{ip}"


def failure_sources(*, password: str, address: str) -> list[str]:
    """The counters a failed login with `password` from `address` is charged to."""
    sources = [_address_source(address)]
    match = KEY_ID_RE.match(password)
    if match and ApiKey.objects.filter(key_id=match[1]).exists():
        sources.append(f"key:{match[1]}")
    return sources


def login_retry_after(source: str) -> int:
    """Seconds until `source` may fail again without 429 (0: not blocked)."""
    from registry.models import LoginFailure

    window = settings.TRAIN_REGISTRY_LOGIN_WINDOW_SECONDS
    row = LoginFailure.objects.filter(key=source).first()
    if row is None or row.count < settings.TRAIN_REGISTRY_LOGIN_FAILURES:
        return 0
    remaining = window - (timezone.now() - row.window_start).total_seconds()
    return max(0, int(remaining) + 1) if remaining > 0 else 0


def login_failure_record(source: str) -> None:
    from registry.models import LoginFailure

    now = timezone.now()
    window_start = now - timezone.timedelta(seconds=settings.TRAIN_REGISTRY_LOGIN_WINDOW_SECONDS)
    # One UPDATE … SET count = count + 1 per failure: concurrent failures are all counted.
    if LoginFailure.objects.filter(key=source, window_start__gte=window_start).update(count=F("count") + 1):
        return
    if LoginFailure.objects.filter(key=source, window_start__lt=window_start).update(count=1, window_start=now):
        return
    # A new source: drop the rows of sources whose window ended a window ago, so the table holds only
    # the sources that failed recently (however many addresses a flood comes from over time).
    LoginFailure.objects.filter(window_start__lt=window_start - (now - window_start)).delete()
    try:
        with transaction.atomic():
            LoginFailure.objects.create(key=source, count=1, window_start=now)
    except IntegrityError:
        LoginFailure.objects.filter(key=source).update(count=F("count") + 1)


def _membership(key: ApiKey | None, username: str) -> Membership | None:
    # An account id is short and plain: anything else (a NUL byte, 10 kB) never reaches a query.
    if key is None or len(username) > ACCOUNT_ID_MAX_LENGTH or not ACCOUNT_ID_RE.match(username):
        return None
    return Membership.objects.filter(user=key.user, account_id=username).first()


def credentials_check(*, username: str, password: str, address: str) -> tuple[ApiKey, str]:
    """(key, role) for account `username` and API key `password`; LoginRefused otherwise (uniformly
    for an unknown account, a wrong key and a non-member). Failures are counted against the key id
    presented and the client `address`; once either has failed too often, further failures are 429
    until the window ends, but the right key still logs in."""
    key = ApiKey.objects.authenticate(password)
    membership = _membership(key, username)
    if membership is not None:
        key.touch()
        return key, membership.role
    sources = failure_sources(password=password, address=address)
    retry_after = max(login_retry_after(source) for source in sources)
    if retry_after:
        raise LoginRefused(retry_after)
    for source in sources:
        login_failure_record(source)
    log.warning("registry login failed for account %r (%s)", username[:80], ", ".join(sources))
    raise LoginRefused()


def basic_credentials(header: str) -> tuple[str, str] | None:
    """(username, password) from `Basic <base64>`; None when malformed (bad base64, no colon, not UTF-8)."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    username, colon, password = decoded.partition(":")
    return (username, password) if colon else None


# --- per-request authorisation on /v2 ---------------------------------------------------------------

def challenge(request, *, scope: str = "", error: str = "") -> str:
    realm = request.build_absolute_uri("/v2/token")
    value = f'Bearer realm="{realm}",service="{settings.TRAIN_REGISTRY_SERVICE}"'
    if scope:
        value += f',scope="{scope}"'
    if error:
        value += f',error="{error}"'
    return value


def needs_scope(needs) -> str:
    """The challenge's scope for `needs`: every action of every resource, so a client that asks for
    exactly what the challenge names gets a token this request accepts (`pull,push` for a push, not
    just the last action of each resource)."""
    grouped: dict[str, frozenset[str]] = {}
    for resource, action in needs:
        grouped[resource] = grouped.get(resource, frozenset()) | {action}
    return scope_string(grouped)


def _unauthorized(request, needs, error="", message=""):
    return RegistryError("UNAUTHORIZED", message, headers={
        "WWW-Authenticate": challenge(request, scope=needs_scope(needs), error=error)})


def _bearer_caller(request, token: str, needs) -> Caller:
    try:
        if not token.isascii():  # a JWT is base64url and dots; anything else is not one of ours
            raise InvalidToken("not a token")
        claims = token_verify(token)
    except InvalidToken as exc:
        raise _unauthorized(request, needs, "invalid_token", "invalid or expired token") from exc
    if claims.is_pull_token:
        return pull_token_caller(claims)
    key = ApiKey.objects.select_related("user").filter(pk=claims.key_pk).first()
    membership = None
    if key is not None and key.is_active():
        membership = Membership.objects.filter(user=key.user, account_id=claims.account_id).first()
    if membership is None:
        raise _unauthorized(request, needs, "invalid_token", "the key behind this token is no longer valid")
    return Caller(account_id=claims.account_id, key=key, role=membership.role, token_access=claims.access)


def pull_token_caller(claims) -> Caller:
    """The caller behind a pull token Train minted for a job: a viewer of the token's account, limited
    to what the token grants (pull, on one repository)."""
    return Caller(account_id=claims.account_id, key=None, role=Role.VIEWER, token_access=claims.access)


def pull_token_claims(username: str, password: str):
    """The claims of `password` when it is a valid pull token for account `username`, else None:
    a container engine presents the token Train gave it as a Basic password at the token endpoint."""
    if not password.startswith("eyJ") or not password.isascii() or len(password) > 4096:
        return None  # not a JWT: an API key, checked as one
    try:
        claims = token_verify(password)
    except InvalidToken:
        return None
    return claims if claims.is_pull_token and claims.account_id == username else None


def request_caller(request, needs=()) -> Caller:
    """The authenticated caller of a /v2 request (Bearer token, or Basic credentials), or 401/429."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return _bearer_caller(request, header[7:].strip(), needs)
    credentials = basic_credentials(header) if header else None
    if credentials is None:
        raise _unauthorized(request, needs)
    try:
        key, role = credentials_check(username=credentials[0], password=credentials[1], address=client_ip(request))
    except LoginRefused as exc:
        if exc.retry_after:
            raise RegistryError("TOOMANYREQUESTS", "too many failed logins; try again later",
                                headers={"Retry-After": str(exc.retry_after)}) from exc
        raise _unauthorized(request, needs, message="invalid credentials") from exc
    return Caller(account_id=credentials[0], key=key, role=role, token_access=None)


def authorize(request, needs, *, wanted=()) -> Caller:
    """Authenticate, then check each (resource, action) in `needs` against the ceiling and the token.
    Beyond the ceiling → 403 DENIED (a new token would not help); missing from the token only →
    401 insufficient_scope, so the client fetches a token with that scope. `wanted` are rights the
    request uses only when it has them (a mount's pull on `from`; without it the mount becomes an
    upload): never required, but named in every challenge, so a client that follows the challenge
    gets them and the mount mounts."""
    challenged = [*needs, *wanted]
    caller = request_caller(request, challenged)
    for resource, action in needs:
        if action not in ceiling(account_id=caller.account_id, role=caller.role, resource=resource):
            raise RegistryError("DENIED", detail={"resource": resource, "action": action})
        if caller.token_access is not None and not _token_grants(caller, resource, action):
            raise _unauthorized(request, challenged, "insufficient_scope", "the token does not grant this access")
    return caller


def _token_grants(caller: Caller, resource: str, action: str) -> bool:
    return bool({action, "*"} & caller.token_access.get(resource, frozenset()))


def may(caller: Caller, resource: str, action: str) -> bool:
    """Whether `caller` holds `action` on `resource` (for optional rights such as a mount's source)."""
    if action not in ceiling(account_id=caller.account_id, role=caller.role, resource=resource):
        return False
    return caller.token_access is None or _token_grants(caller, resource, action)
