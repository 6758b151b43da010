"""A client that knows nothing but the challenge: on each 401 it asks the realm for exactly the scope
the WWW-Authenticate header names, then retries once. Pushing, tagging and mounting must all work
that way, over real HTTP against the gateway."""

import hashlib
import json
import re

import pytest
import requests

from registry.models import RepositoryBlob, Upload

pytestmark = pytest.mark.django_db(transaction=True)

CHALLENGE_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"


class ChallengeFollower:
    def __init__(self, base, username, password):
        self.base, self.basic = base, (username, password)
        self.session = requests.Session()
        self.token = None
        self.challenges = []

    def request(self, method, path, **kwargs):
        response = self._send(method, path, **kwargs)
        if response.status_code != 401:
            return response
        header = response.headers["WWW-Authenticate"]
        self.challenges.append(header)
        assert header.startswith("Bearer "), header
        params = dict(CHALLENGE_PARAM_RE.findall(header))
        query = {"service": params["service"]}
        if "scope" in params:
            query["scope"] = params["scope"]
        issued = self.session.get(params["realm"], params=query, auth=self.basic, timeout=30)
        assert issued.status_code == 200, issued.text
        self.token = issued.json()["token"]
        return self._send(method, path, **kwargs)  # once: a second 401 is the bug this file guards

    def _send(self, method, path, **kwargs):
        headers = dict(kwargs.pop("headers", {}))
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return self.session.request(method, self.base + path, headers=headers, timeout=30, **kwargs)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(client, name, data):
    digest = sha256(data)
    response = client.request("POST", f"/v2/{name}/blobs/uploads/", params={"digest": digest}, data=data,
                              headers={"Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    return digest


def test_push_tag_and_mount_following_only_the_challenge(registry_server, operator):
    pusher = ChallengeFollower(registry_server, "acme", operator.plaintext)
    config, layer = b'{"architecture":"amd64","os":"linux"}', b"layer bytes" * 100
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": push_blob(
                    pusher, "acme/app", config), "size": len(config)},
                "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                            "digest": push_blob(pusher, "acme/app", layer), "size": len(layer)}]}
    put = pusher.request("PUT", "/v2/acme/app/manifests/v1", data=json.dumps(document).encode(),
                         headers={"Content-Type": OCI_MANIFEST})
    assert put.status_code == 201, put.text
    assert 'scope="repository:acme/app:pull,push"' in pusher.challenges[0]

    # A token for acme/app does not cover acme/copy: the mount's challenge names both repositories.
    layer_digest = document["layers"][0]["digest"]
    mounted = pusher.request("POST", "/v2/acme/copy/blobs/uploads/",
                             params={"mount": layer_digest, "from": "acme/app"})
    assert mounted.status_code == 201, mounted.text  # mounted, not a 202 upload to copy into
    assert mounted.headers["Location"] == f"/v2/acme/copy/blobs/{layer_digest}"
    assert 'scope="repository:acme/app:pull repository:acme/copy:pull,push"' in pusher.challenges[-1]
    assert RepositoryBlob.objects.filter(repository__name="acme/copy", blob__digest=layer_digest).exists()
    assert not Upload.objects.filter(repository__name="acme/copy").exists()

    reader = ChallengeFollower(registry_server, "acme", operator.plaintext)
    pulled = reader.request("GET", "/v2/acme/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert pulled.status_code == 200 and pulled.json() == document
