"""Forwarding headers are believed only from TRAIN_TRUSTED_PROXIES: X-Forwarded-Proto (what
SECURE_PROXY_SSL_HEADER reads) and the client-address header (what the login limit counts by)."""

import pytest
from django.test import RequestFactory

from trainsvc.clientip import client_ip


@pytest.fixture
def proxied(settings):
    settings.TRAIN_TRUSTED_PROXIES = ["10.0.0.0/8", "fd00::/8"]
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    return settings


@pytest.mark.parametrize(("peer", "forwarded", "expected"), [
    pytest.param("203.0.113.9", "192.0.2.1", "203.0.113.9", id="untrusted-peer-header-ignored"),
    pytest.param("10.0.0.5", "", "10.0.0.5", id="proxy-without-header"),
    pytest.param("10.0.0.5", "192.0.2.1", "192.0.2.1", id="one-proxy"),
    pytest.param("10.0.0.5", "6.6.6.6, 192.0.2.1, 10.1.1.1", "192.0.2.1", id="right-most-untrusted-hop"),
    pytest.param("10.0.0.5", "192.0.2.1, not-an-ip, 10.1.1.1", "10.1.1.1", id="malformed-hop-stops-the-walk"),
    pytest.param("fd00::1", "2001:db8::7", "2001:db8::7", id="ipv6"),
])
def test_client_ip_is_the_right_most_untrusted_hop(proxied, peer, forwarded, expected):
    request = RequestFactory().get("/", REMOTE_ADDR=peer, HTTP_X_FORWARDED_FOR=forwarded)
    assert client_ip(request) == expected


def test_the_client_address_header_is_configurable(proxied):
    proxied.TRAIN_CLIENT_IP_HEADER = "X-Real-IP"
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_REAL_IP="192.0.2.8",
                                   HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert client_ip(request) == "192.0.2.8"


def test_forwarded_proto_from_an_untrusted_client_is_not_https(client, proxied):
    response = client.get("/v1/jobs", REMOTE_ADDR="203.0.113.9", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 301  # still plain HTTP: redirected to HTTPS
    assert response["Location"].startswith("https://")


def test_forwarded_proto_from_a_trusted_proxy_is_https(client, proxied, db):
    response = client.get("/v1/jobs", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_PROTO="https")
    assert response.status_code == 401  # served: the API asks for a key


def test_no_trusted_proxies_means_no_forwarded_header_is_believed(client, settings):
    settings.TRAIN_TRUSTED_PROXIES = []
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/v1/jobs", HTTP_X_FORWARDED_PROTO="https").status_code == 301
