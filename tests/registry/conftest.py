"""Helpers for /v2 tests through Django's test client: a per-caller client that fetches bearer tokens
the way docker does (one per scope set), and small push helpers."""

import base64
import hashlib
import json
import re

import pytest
from django.test import Client

from tests.conftest import Caller

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
NAME_RE = re.compile(r"^/v2/(.+?)/(?:blobs|manifests|tags|referrers)/")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def error_code(response) -> str:
    return json.loads(response.content)["errors"][0]["code"]


class V2:
    """Talks to /v2 as `caller`, with a bearer token covering the repository of each request."""

    def __init__(self, caller: Caller):
        self.caller = caller
        self.client = Client()
        self.tokens: dict[str, str] = {}

    def token(self, *scopes: str) -> str:
        key = " ".join(sorted(scopes))
        if key not in self.tokens:
            response = self.client.get("/v2/token", {"service": "train-registry", "scope": list(scopes)},
                                       HTTP_AUTHORIZATION=basic(self.caller.account.id, self.caller.plaintext))
            assert response.status_code == 200, response.content
            self.tokens[key] = response.json()["token"]
        return self.tokens[key]

    def scopes_for(self, path: str, query: dict) -> list[str]:
        if path.startswith("/v2/_catalog"):
            return ["registry:catalog:*"]
        match = NAME_RE.match(path)
        scopes = [f"repository:{match[1]}:pull,push,delete"] if match else []
        if query.get("from"):
            scopes.append(f"repository:{query['from']}:pull")
        return scopes

    def request(self, method: str, path: str, body: bytes = b"", *, query=None, content_type="application/octet-stream",
                **headers):
        query = query or {}
        auth = {"HTTP_AUTHORIZATION": f"Bearer {self.token(*self.scopes_for(path, query))}"}
        if query:
            from urllib.parse import urlencode

            path = f"{path}?{urlencode(query, doseq=True)}"
        return self.client.generic(method, path, body, content_type=content_type, **auth, **headers)

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def head(self, path, **kw):
        return self.request("HEAD", path, **kw)

    def push_blob(self, name: str, data: bytes) -> str:
        digest = digest_of(data)
        response = self.request("POST", f"/v2/{name}/blobs/uploads/", data, query={"digest": digest})
        assert response.status_code == 201, response.content
        return digest

    def push_manifest(self, name: str, reference: str, document: dict, media_type: str = OCI_MANIFEST):
        body = json.dumps(document).encode()
        return self.request("PUT", f"/v2/{name}/manifests/{reference}", body, content_type=media_type)

    def push_image(self, name: str, tag: str, *, seed: str = "x", media_type: str = OCI_MANIFEST) -> tuple[str, dict]:
        """A config and one layer, then a manifest tagged `tag`; returns (digest, document)."""
        config = json.dumps({"architecture": "amd64", "os": "linux", "seed": seed}).encode()
        layer = f"layer-{seed}".encode() * 10
        config_type = OCI_CONFIG if media_type == OCI_MANIFEST else "application/vnd.docker.container.image.v1+json"
        document = {
            "schemaVersion": 2, "mediaType": media_type,
            "config": {"mediaType": config_type, "digest": self.push_blob(name, config), "size": len(config)},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": self.push_blob(name, layer),
                        "size": len(layer)}],
        }
        response = self.push_manifest(name, tag, document, media_type)
        assert response.status_code == 201, response.content
        return response["Docker-Content-Digest"], document


@pytest.fixture
def v2_operator(operator):
    return V2(operator)


@pytest.fixture
def v2_member(member):
    return V2(member)


@pytest.fixture
def v2_viewer(viewer):
    return V2(viewer)


@pytest.fixture
def v2_outsider(outsider):
    return V2(outsider)


@pytest.fixture(scope="module")
def registry_gateway(django_db_setup, django_db_blocker, tmp_path_factory):
    """A real gateway (gunicorn, two sync workers) on a free loopback port, on the test database:
    (base URL, gunicorn master process). Tests using it need `transactional_db`, so the rows they
    create are committed and visible to it."""
    from tests.support.processes import gateway

    with django_db_blocker.unblock(), gateway(tmp_path_factory.mktemp("gateway")) as started:
        yield started


@pytest.fixture
def registry_server(registry_gateway):
    return registry_gateway[0]
