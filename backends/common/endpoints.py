"""Endpoint URLs an account may point Train at, checked the way the HTTP client will read them.

An account that may set an endpoint URL can aim Train's signed requests at any host it names. The
allow-list is only as good as the host it checks: Python's `urlsplit` and urllib3's `parse_url` (which
botocore's HTTP layer uses to pick the host it connects to) disagree on URLs such as
`https://127.0.0.1:18351\\@api.sagemaker.eu-west-1.amazonaws.com` (urlsplit sees the AWS host after
the `@`, urllib3 connects to 127.0.0.1). So: characters that make parsers disagree are refused
outright, both parsers must agree on the host and port, the host is normalised (lowercase, no
trailing dot, IDNA, IPv6 without brackets) before it is compared, and the URL the client receives is
rebuilt from the checked parts, never passed through as typed.
"""

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

MAX_ENDPOINT_URL_LENGTH = 512
# Characters with no place in an endpoint URL that parsers read differently: userinfo ('@'),
# backslash (a path separator to browsers, not to urlsplit), percent-encoding (urllib3 decodes it in
# hosts), and whitespace/control characters (urlsplit silently strips some of them).
REFUSED_CHARACTERS = frozenset("@\\%")
# One DNS label (RFC 1123): letters, digits and inner hyphens, at most 63 characters.
LABEL_RE = re.compile(r"\A(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
# The last label of a host name starts with a letter: otherwise resolvers may read it as a number
# ("127.1", "0x7f.1" are both 127.0.0.1 to inet_aton).
LAST_LABEL_RE = re.compile(r"\A[a-z]")
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})


class EndpointError(ValueError):
    """Why a URL may not be used as an endpoint (the message is shown to the caller)."""


@dataclass(frozen=True)
class Endpoint:
    scheme: str
    host: str  # normalised: lowercase ASCII, no trailing dot, IPv6 without brackets
    port: int | None

    @property
    def is_ip(self) -> bool:
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}" + (f":{self.port}" if self.port is not None else "")


def normalise_host(raw: str | None) -> str:
    """The host as a resolver will use it, or EndpointError."""
    if not raw:
        raise EndpointError("The URL names no host.")
    host = raw.strip("[]") if raw.startswith("[") else raw
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host).compressed
        except ValueError:
            raise EndpointError("The host is not a valid IPv6 address.") from None
    try:
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise EndpointError("The host is not a valid domain name.") from None
    host = host.lower().removesuffix(".")
    labels = host.split(".")
    if all(label.isdigit() for label in labels):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise EndpointError("The host is not a valid IPv4 address.") from None
    if len(host) > 253 or not all(LABEL_RE.match(label) for label in labels) or not LAST_LABEL_RE.match(labels[-1]):
        raise EndpointError("The host is not a valid domain name.")
    return host


def parse_endpoint(value) -> Endpoint:
    """`scheme://host[:port][/]` as both urllib3 and urlsplit read it, or EndpointError."""
    from urllib3.exceptions import LocationParseError
    from urllib3.util.url import parse_url

    if not isinstance(value, str) or not value or len(value) > MAX_ENDPOINT_URL_LENGTH:
        raise EndpointError(f"Must be an http(s) URL of at most {MAX_ENDPOINT_URL_LENGTH} characters.")
    if any(ch in REFUSED_CHARACTERS or not ch.isprintable() or ch.isspace() for ch in value):
        raise EndpointError("Must not contain '@', '\\', '%', whitespace or control characters.")
    try:
        ours, theirs = urlsplit(value), parse_url(value)
        our_port, their_port = ours.port, theirs.port
    except (ValueError, LocationParseError):
        raise EndpointError("Not a valid URL.") from None
    if ours.scheme not in ("https", "http") or (theirs.scheme or "").lower() != ours.scheme:
        raise EndpointError("Must be an http(s) URL.")
    if ours.path not in ("", "/") or ours.query or ours.fragment or "?" in value or "#" in value:
        raise EndpointError("Must be a URL such as https://api.sagemaker.eu-west-1.amazonaws.com (no path).")
    host = normalise_host(ours.hostname)
    if normalise_host(theirs.host) != host or their_port != our_port:
        raise EndpointError("The host is ambiguous (URL parsers disagree on it).")
    if our_port == 0:
        raise EndpointError("The port must be between 1 and 65535.")
    return Endpoint(scheme=ours.scheme, host=host, port=our_port)


def host_allowed(endpoint: Endpoint, patterns) -> bool:
    """Whether `patterns` allow the endpoint's host: an exact host, or ".suffix" for any host name
    under it. A suffix never matches an IP address."""
    for pattern in patterns:
        pattern = pattern.strip().lower().removesuffix(".")
        if pattern.startswith("."):
            if not endpoint.is_ip and endpoint.host.endswith(pattern):
                return True
        elif pattern and normalise_host(pattern) == endpoint.host:
            return True
    return False


def checked_endpoint_url(value, *, allowed_hosts) -> str:
    """The canonical form of an endpoint URL the deployment allows, or EndpointError saying why not.
    Plain http is accepted only for loopback (a local emulator)."""
    endpoint = parse_endpoint(value)
    if not host_allowed(endpoint, allowed_hosts):
        raise EndpointError(f"This deployment allows endpoints only on: {', '.join(allowed_hosts)}.")
    if endpoint.scheme == "http" and endpoint.host not in LOOPBACK_HOSTS:
        raise EndpointError("Use https; plain http is accepted only for a local emulator.")
    return endpoint.url


def endpoint_errors(values: dict, *, allowed_hosts) -> dict[str, str]:
    """Why each given (not None) endpoint in `values` (field -> URL) may not be used, keyed by field."""
    errors = {}
    for field, value in values.items():
        if value is not None:
            try:
                checked_endpoint_url(value, allowed_hosts=allowed_hosts)
            except EndpointError as exc:
                errors[field] = str(exc)
    return errors
