"""The registry driven by a real client: skopeo against gunicorn (login, copy both ways byte for byte,
inspect, delete, multi-layer and multi-arch images; cross-account attempts fail)."""

import json
import subprocess

import pytest

from registry.models import TagEvent
from tests.conftest import require_tool
from tests.registry.ocilayout import blob_bytes, build_image, build_index

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class Skopeo:
    def __init__(self, host, authfile):
        self.binary = require_tool("skopeo")
        self.host, self.authfile = host, authfile

    def run(self, *args, check=True):
        result = subprocess.run([self.binary, *args], capture_output=True, text=True, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"skopeo {' '.join(args)} failed: {result.stderr}")
        return result

    def login(self, username, password):
        return self.run("login", "--tls-verify=false", "--authfile", str(self.authfile), "-u", username,
                        "-p", password, self.host)

    def copy(self, source, destination, *extra, check=True):
        return self.run("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--authfile",
                        str(self.authfile), *extra, source, destination, check=check)

    def inspect(self, reference, *extra, check=True):
        return self.run("inspect", "--tls-verify=false", "--authfile", str(self.authfile), *extra,
                        f"docker://{self.host}/{reference}", check=check)


@pytest.fixture
def skopeo(registry_server, tmp_path, operator):
    client = Skopeo(registry_server.removeprefix("http://"), tmp_path / "auth.json")
    client.login("acme", operator.plaintext)
    return client


def test_push_inspect_pull_back_byte_for_byte_and_delete(skopeo, tmp_path):
    built = build_image(tmp_path / "src", "v1", seed=101, layers=3)
    skopeo.copy(f"oci:{tmp_path / 'src'}:v1", f"docker://{skopeo.host}/acme/app:v1")
    inspected = json.loads(skopeo.inspect("acme/app:v1").stdout)
    assert inspected["Digest"] == built.digest and inspected["RepoTags"] == ["v1"]
    raw = skopeo.inspect("acme/app:v1", "--raw").stdout.encode()
    assert raw == blob_bytes(tmp_path / "src", built.digest)
    skopeo.copy(f"docker://{skopeo.host}/acme/app:v1", f"oci:{tmp_path / 'back'}:v1")
    for digest in [built.digest, *built.blobs]:
        assert blob_bytes(tmp_path / "back", digest) == blob_bytes(tmp_path / "src", digest)
    skopeo.run("delete", "--tls-verify=false", "--authfile", str(skopeo.authfile), f"docker://{skopeo.host}/acme/app:v1")
    missing = skopeo.inspect("acme/app:v1", check=False)
    assert missing.returncode != 0 and "manifest unknown" in missing.stderr


def test_multi_arch_index_round_trip(skopeo, tmp_path):
    built = build_index(tmp_path / "src", "multi", seed=202)
    skopeo.copy(f"oci:{tmp_path / 'src'}:multi", f"docker://{skopeo.host}/acme/multi:m", "--all")
    raw = skopeo.inspect("acme/multi:m", "--raw").stdout.encode()
    assert raw == blob_bytes(tmp_path / "src", built.digest)
    skopeo.copy(f"docker://{skopeo.host}/acme/multi:m", f"oci:{tmp_path / 'back'}:m", "--all")
    for digest in [built.digest, *built.children, *built.blobs]:
        assert blob_bytes(tmp_path / "back", digest) == blob_bytes(tmp_path / "src", digest)


def test_pushing_a_tag_again_is_recorded(skopeo, tmp_path):
    first = build_image(tmp_path / "one", "v1", seed=301)
    second = build_image(tmp_path / "two", "v1", seed=302)
    skopeo.copy(f"oci:{tmp_path / 'one'}:v1", f"docker://{skopeo.host}/acme/app:v1")
    skopeo.copy(f"oci:{tmp_path / 'two'}:v1", f"docker://{skopeo.host}/acme/app:v1")
    moves = list(TagEvent.objects.filter(tag="v1").order_by("id").values_list("old_digest", "new_digest"))
    assert moves == [("", first.digest), (first.digest, second.digest)]


def test_another_account_cannot_read_push_mount_or_list(skopeo, registry_server, tmp_path, outsider):
    import requests

    built = build_image(tmp_path / "src", "v1", seed=401)
    skopeo.copy(f"oci:{tmp_path / 'src'}:v1", f"docker://{skopeo.host}/acme/app:v1")
    intruder = Skopeo(skopeo.host, tmp_path / "intruder.json")
    intruder.login("globex", outsider.plaintext)
    assert intruder.inspect("acme/app:v1", check=False).returncode != 0
    assert intruder.copy(f"oci:{tmp_path / 'src'}:v1", f"docker://{skopeo.host}/acme/stolen:v1",
                         check=False).returncode != 0
    # Logging in as acme with globex's key is refused outright.
    assert intruder.run("login", "--tls-verify=false", "--authfile", str(tmp_path / "x.json"), "-u", "acme",
                        "-p", outsider.plaintext, skopeo.host, check=False).returncode != 0
    token = requests.get(f"{registry_server}/v2/token", auth=("globex", outsider.plaintext), timeout=10, params={
        "scope": ["registry:catalog:*", "repository:globex/app:pull,push", "repository:acme/app:pull"]}).json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}
    mount = requests.post(f"{registry_server}/v2/globex/app/blobs/uploads/", headers=bearer, timeout=10,
                          params={"mount": built.blobs[1], "from": "acme/app"})
    assert mount.status_code == 202
    assert requests.head(f"{registry_server}/v2/globex/app/blobs/{built.blobs[1]}", headers=bearer,
                         timeout=10).status_code == 404
    catalog = requests.get(f"{registry_server}/v2/_catalog", headers=bearer, timeout=10)
    assert catalog.json() == {"repositories": []}  # nothing of acme's; globex/app holds no manifest yet


def test_job_submitted_on_a_pushed_tag_records_its_digest(skopeo, tmp_path, api, member, settings):
    settings.TRAIN_REGISTRY_HOST = skopeo.host
    first = build_image(tmp_path / "one", "v1", seed=501)
    skopeo.copy(f"oci:{tmp_path / 'one'}:v1", f"docker://{skopeo.host}/acme/trainer:v1")
    body = {"name": "sft", "backend": "local", "image": f"{skopeo.host}/acme/trainer:v1", "command": ["true"]}
    response = api.post("/v1/jobs", body, format="json", **member.headers)
    assert response.status_code == 201, response.content
    assert response.json()["image_digest"] == first.digest
    build_image(tmp_path / "two", "v1", seed=502)
    skopeo.copy(f"oci:{tmp_path / 'two'}:v1", f"docker://{skopeo.host}/acme/trainer:v1")
    again = api.get(f"/v1/jobs/{response.json()['id']}", **member.headers)
    assert again.json()["image_digest"] == first.digest
    missing = dict(body, image=f"{skopeo.host}/acme/trainer:nope")
    assert api.post("/v1/jobs", missing, format="json", **member.headers).status_code == 400
