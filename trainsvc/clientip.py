"""Who the client is, behind the load balancer: the address Train may count failed logins by, and
the forwarding headers it may believe.

Only the peers in TRAIN_TRUSTED_PROXIES are believed. From anyone else, `X-Forwarded-Proto` and the
client-address header are removed before any view or middleware reads them (a client could
otherwise claim HTTPS, or a fresh address per request). Through trusted proxies, the client is the
right-most hop of the client-address header that is not itself a trusted proxy: every proxy appends
the peer it saw, so hops to the left of that one are whatever the client chose to send."""

import ipaddress
from functools import cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

FORWARDED_PROTO_META = "HTTP_X_FORWARDED_PROTO"


@cache
def _networks(cidrs: tuple[str, ...]):
    try:
        return tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)
    except ValueError as exc:
        raise ImproperlyConfigured(f"TRAIN_TRUSTED_PROXIES: {exc}") from exc


def _address(text: str):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def is_trusted_proxy(address: str) -> bool:
    ip = _address(address)
    return ip is not None and any(ip in network for network in _networks(tuple(settings.TRAIN_TRUSTED_PROXIES)))


def client_header_meta() -> str:
    """The META key of the client-address header (`X-Forwarded-For` → `HTTP_X_FORWARDED_FOR`)."""
    return "HTTP_" + settings.TRAIN_CLIENT_IP_HEADER.upper().replace("-", "_")


def client_ip(request) -> str:
    """The client's address: REMOTE_ADDR, or through trusted proxies the right-most untrusted hop of
    the client-address header. A malformed hop ends the walk at the last address a trusted proxy
    vouched for."""
    current = request.META.get("REMOTE_ADDR", "")
    if not is_trusted_proxy(current):
        return current
    hops = request.META.get(client_header_meta(), "").split(",")
    for hop in reversed(hops):
        ip = _address(hop)
        if ip is None:
            break
        current = str(ip)
        if not is_trusted_proxy(current):
            break
    return current


class TrustedProxyMiddleware:
    """First in MIDDLEWARE: drops the forwarding headers of peers that are not trusted proxies, so
    SECURE_PROXY_SSL_HEADER (request.is_secure(), the HTTPS redirect, secure cookies) and the login
    limit only ever see what a trusted proxy set."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not is_trusted_proxy(request.META.get("REMOTE_ADDR", "")):
            request.META.pop(FORWARDED_PROTO_META, None)
            request.META.pop(client_header_meta(), None)
        return self.get_response(request)
