"""The OCI distribution-spec conformance checks, ported from the spec's conformance program (the v1.1
Ginkgo suite: pull, push, content discovery, content management; and the redesigned program on the
spec's main branch: blob APIs per digest algorithm, range requests, the data sets, manifest errors),
run against a real gateway over HTTP. Where the program accepts a fallback and reports the feature as
unsupported (a 405 blob delete, an anonymous mount answered with an upload session), so do these.

Requests carry Basic credentials, which /v2 accepts with the same ceiling as a token; the token flow
itself is covered by the token tests."""

import json
import os

import pytest
import requests

from tests.registry.conformance_data import OCI_INDEX, DataSet, data_sets, digest

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]
REPO, REPO2 = "acme/conformance-repo1", "acme/conformance-repo2"
CHUNK_MIN = 1024


class Registry:
    def __init__(self, base: str, key: str):
        self.base = base
        self.session = requests.Session()
        self.session.auth = ("acme", key)
        self.unsupported: set[str] = set()  # features the program would report as unsupported (a skip)

    def url(self, path: str) -> str:
        return path if path.startswith("http") else self.base + path

    def do(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, self.url(path), timeout=60, **kwargs)

    def location(self, response, expected: int) -> str:
        assert response.status_code == expected, (response.status_code, response.text[:300])
        assert response.headers.get("Location"), "no Location header"
        return self.url(response.headers["Location"])

    def start(self, repo: str) -> str:
        return self.location(self.do("POST", f"/v2/{repo}/blobs/uploads/", headers={"Content-Length": "0"}), 202)

    def verify_location(self, location: str, body: bytes) -> None:
        served = self.do("GET", location)
        assert served.status_code == 200 and served.content == body


# --- blob push APIs (run.go TestBlobAPIs, 02_push_test.go) -------------------------------------------

def push_post_only(reg, repo, dig, body, *, bad=False):
    response = reg.do("POST", f"/v2/{repo}/blobs/uploads/", params={"digest": dig}, data=body,
                      headers={"Content-Type": "application/octet-stream"})
    if bad:
        assert response.status_code in (400, 202), response.text
        return
    if response.status_code == 202:  # content in the POST not supported: the program falls back to a PUT
        reg.unsupported.add("post only")
        response = reg.do("PUT", reg.location(response, 202), params={"digest": dig}, data=body)
    return reg.location(response, 201), response


def push_post_put(reg, repo, dig, body, *, bad=False):
    response = reg.do("PUT", reg.start(repo), params={"digest": dig}, data=body,
                      headers={"Content-Type": "application/octet-stream"})
    if bad:
        assert response.status_code == 400, response.text
        return
    return reg.location(response, 201), response


def push_stream(reg, repo, dig, body, *, bad=False):
    location = reg.start(repo)
    # A generator body goes out with Transfer-Encoding: chunked, as a streamed PATCH does.
    patched = reg.do("PATCH", location, data=iter([body[: len(body) // 2], body[len(body) // 2:]]),
                     headers={"Content-Type": "application/octet-stream"})
    location = reg.location(patched, 202)
    response = reg.do("PUT", location, params={"digest": dig}, headers={"Content-Length": "0"})
    if bad:
        assert response.status_code == 400, response.text
        return
    return reg.location(response, 201), response


def _out_of_order(reg, location, dig, body, last, size, *, put):
    bad_start = last + 1 + size
    bad_start = 0 if bad_start >= len(body) else bad_start
    bad_end = min(bad_start + size - 1, len(body) - 1)
    method = "PUT" if put and bad_end == len(body) - 1 else "PATCH"
    params = {"digest": dig} if method == "PUT" else None
    refused = reg.do(method, location, params=params, data=body[bad_start:bad_end + 1], headers={
        "Content-Range": f"{bad_start}-{bad_end}", "Content-Type": "application/octet-stream"})
    assert refused.status_code == 416, (refused.status_code, refused.text)
    status = reg.do("GET", location)
    assert status.status_code == 204
    assert status.headers["Range"].startswith("0-")
    if last >= 0:
        assert status.headers["Range"] == f"0-{last}"
    return reg.url(status.headers["Location"])


def push_chunked(reg, repo, dig, body, *, bad=False, put_last=False, out_of_order=False):
    location = reg.start(repo)
    size = min(max(len(body) // 3 + 1, CHUNK_MIN), len(body))
    last = -1
    while last < len(body) - 1:
        if out_of_order:
            location = _out_of_order(reg, location, dig, body, last, size, put=put_last)
        start, last = last + 1, min(last + size, len(body) - 1)
        headers = {"Content-Range": f"{start}-{last}", "Content-Type": "application/octet-stream"}
        if put_last and last == len(body) - 1:
            response = reg.do("PUT", location, params={"digest": dig}, data=body[start:last + 1], headers=headers)
            if bad:
                assert response.status_code == 400, response.text
                return
            return reg.location(response, 201), response
        location = reg.location(reg.do("PATCH", location, data=body[start:last + 1], headers=headers), 202)
    response = reg.do("PUT", location, params={"digest": dig}, headers={"Content-Length": "0"})
    if bad:
        assert response.status_code == 400, response.text
        return
    return reg.location(response, 201), response


PUSHES = {"post only": push_post_only, "post+put": push_post_put, "stream": push_stream,
          "chunked single": push_chunked, "chunked multi": push_chunked,
          "chunked multi and put chunk": lambda *a, **k: push_chunked(*a, put_last=True, **k),
          "chunked out-of-order": lambda *a, **k: push_chunked(*a, out_of_order=True, **k),
          "chunked out-of-order and put chunk": lambda *a, **k: push_chunked(*a, put_last=True, out_of_order=True,
                                                                              **k)}


def check_blob(reg, repo, dig, body):
    head = reg.do("HEAD", f"/v2/{repo}/blobs/{dig}")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(body))
    assert head.headers.get("Docker-Content-Digest", dig) == dig
    got = reg.do("GET", f"/v2/{repo}/blobs/{dig}")
    assert got.status_code == 200 and got.content == body and got.headers["Content-Length"] == str(len(body))
    assert got.headers.get("Docker-Content-Digest", dig) == dig


def delete_blob(reg, repo, dig):
    """202, 404, or 405 when blob deletion is not offered (the program then reports it unsupported)."""
    response = reg.do("DELETE", f"/v2/{repo}/blobs/{dig}")
    assert response.status_code in (202, 404, 405), response.text
    if response.status_code == 405:
        reg.unsupported.add("blob delete")
    if response.status_code == 202:
        assert reg.do("HEAD", f"/v2/{repo}/blobs/{dig}").status_code == 404


# What Train does not offer, which the program reports as unsupported rather than failed: blob deletion
# (blobs go with the manifests that use them) and mounts that do not name their source repository.
EXPECTED_UNSUPPORTED = {"blob delete", "mount anonymous"}


@pytest.fixture
def reg(registry_server, operator):
    registry = Registry(registry_server, operator.plaintext)
    yield registry
    assert registry.unsupported <= EXPECTED_UNSUPPORTED


def test_ping(reg):
    response = reg.do("GET", "/v2/")
    assert response.status_code == 200


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
@pytest.mark.parametrize("api", list(PUSHES))
def test_blob_push_apis(reg, algorithm, api):
    size = 3 * CHUNK_MIN - 5 if api.startswith("chunked") and api != "chunked single" else 512
    body = os.urandom(size)
    dig = digest(body, algorithm)
    location, response = PUSHES[api](reg, REPO, dig, body)
    assert response.headers.get("Docker-Content-Digest", dig) == dig
    reg.verify_location(location, body)
    check_blob(reg, REPO, dig, body)
    delete_blob(reg, REPO, dig)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
@pytest.mark.parametrize("api", ["post only", "post+put", "chunked multi", "chunked multi and put chunk", "stream"])
def test_blob_push_with_a_bad_digest_is_400(reg, algorithm, api):
    body = os.urandom(3 * CHUNK_MIN - 5)
    dig = digest(body, algorithm)
    PUSHES[api](reg, REPO, dig, body + b"oh no", bad=True)
    assert reg.do("HEAD", f"/v2/{REPO}/blobs/{dig}").status_code == 404


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_blob_missing_mount_and_cancel(reg, algorithm):
    body = os.urandom(512)
    dig = digest(body, algorithm)
    assert reg.do("GET", f"/v2/{REPO}/blobs/{dig}").status_code == 404  # get-missing
    # mount missing: the source lacks the blob, so an upload session is opened instead
    reg.location(reg.do("POST", f"/v2/{REPO}/blobs/uploads/", params={"mount": dig, "from": REPO2}), 202)
    push_post_put(reg, REPO2, dig, body)
    mounted = reg.do("POST", f"/v2/{REPO}/blobs/uploads/", params={"mount": dig, "from": REPO2})
    assert mounted.headers.get("Docker-Content-Digest", dig) == dig
    reg.verify_location(reg.location(mounted, 201), body)
    check_blob(reg, REPO, dig, body)
    # mount anonymous (no `from`): 201, or an upload session that a PUT completes (reported unsupported)
    other = os.urandom(512)
    push_post_put(reg, REPO2, digest(other, algorithm), other)
    anonymous = reg.do("POST", "/v2/acme/conformance-repo3/blobs/uploads/", params={"mount": digest(other, algorithm)})
    assert anonymous.status_code in (201, 202)
    if anonymous.status_code == 202:
        reg.unsupported.add("mount anonymous")
        put = reg.do("PUT", reg.url(anonymous.headers["Location"]), params={"digest": digest(other, algorithm)},
                     data=other)
        assert put.status_code == 201
    # post cancel
    location = reg.start(REPO)
    assert reg.do("DELETE", location).status_code == 204
    assert reg.do("GET", location).status_code == 404


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_well_known_blobs_empty_and_empty_json(reg, algorithm):
    for body in (b"", b"{}"):
        dig = digest(body, algorithm)
        push_post_only(reg, REPO, dig, body)
        check_blob(reg, REPO, dig, body)
        delete_blob(reg, REPO, dig)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_range_requests(reg, algorithm):
    body = os.urandom(2048)
    dig = digest(body, algorithm)
    push_post_put(reg, REPO, dig, body)
    for header, start, end in (("bytes=500-1499", 500, 1499), ("bytes=500-", 500, 2047), ("bytes=-500", 1548, 2047),
                               ("bytes=2000-5000", 2000, 2047)):
        response = reg.do("GET", f"/v2/{REPO}/blobs/{dig}", headers={"Range": header})
        assert response.status_code == 206, header
        assert response.content == body[start:end + 1]
        assert response.headers["Content-Length"] == str(end - start + 1)
        assert response.headers["Content-Range"] in (f"bytes {start}-{end}/2048", f"bytes {start}-{end}/*")
    for header in ("bytes=500-0", "bytes=5000-10000"):
        assert reg.do("GET", f"/v2/{REPO}/blobs/{dig}", headers={"Range": header}).status_code == 416, header


# --- the data sets (run.go TestPush/TestList/TestHead/TestPull/TestReferrers/TestDelete) --------------

def push_data(reg, data: DataSet):
    apis = ["post+put", "post only", "stream", "chunked multi"]  # TestPushBlobAny's blobAPIs
    for number, (dig, body) in enumerate(data.blobs.items()):
        PUSHES[apis[number % len(apis)]](reg, REPO, dig, body)
    for dig, body in data.manifests.items():
        media_type = json.loads(body)["mediaType"]
        tags = [tag for tag, target in data.tags.items() if target == dig] if data.opts.get("tag_param") else []
        response = reg.do("PUT", f"/v2/{REPO}/manifests/{dig}", data=body, headers={"Content-Type": media_type},
                          params={"tag": tags})
        if tags:
            assert {t.strip() for t in response.headers.get("OCI-Tag", "").split(",")} >= set(tags)
        if dig in data.bad_digest:
            assert response.status_code == 400, response.text
            continue
        assert response.headers.get("Docker-Content-Digest", dig) == dig
        subject = json.loads(body).get("subject")
        if subject:
            assert response.headers.get("OCI-Subject") == subject["digest"]
        served = reg.do("GET", reg.location(response, 201), headers={"Accept": f"{OCI_INDEX}, {media_type}"})
        assert served.status_code == 200 and served.content == body
        assert served.headers["Content-Type"] == media_type and served.headers["Content-Length"] == str(len(body))
    for tag, dig in data.tags.items() if not data.opts.get("tag_param") else ():
        body = data.manifests[dig]
        response = reg.do("PUT", f"/v2/{REPO}/manifests/{tag}", data=body,
                          headers={"Content-Type": json.loads(body)["mediaType"]})
        assert response.status_code == 201, response.text
        assert response.headers.get("Docker-Content-Digest", dig) == dig


def check_listing(reg, data: DataSet):
    listing = reg.do("GET", f"/v2/{REPO}/tags/list")
    assert listing.status_code == 200
    tags = listing.json()["tags"]
    assert set(data.tags) <= set(tags)
    if len(tags) >= 2:
        ordered = sorted(tags)
        last = ordered[len(ordered) // 2 - 1]
        partial = reg.do("GET", f"/v2/{REPO}/tags/list", params={"last": last}).json()["tags"]
        assert not set(ordered[: len(ordered) // 2]) & set(partial)
        assert set(ordered[len(ordered) // 2:]) <= set(partial)
        first = reg.do("GET", f"/v2/{REPO}/tags/list", params={"n": 1})
        assert first.json()["tags"] == ordered[:1] and 'rel="next"' in first.headers.get("Link", "")


def check_pull(reg, data: DataSet):
    refs = [(tag, dig) for tag, dig in data.tags.items()]
    refs += [(dig, dig) for dig in data.manifests if dig not in data.bad_digest]
    for reference, dig in refs:
        body = data.manifests[dig]
        media_type = json.loads(body)["mediaType"]
        head = reg.do("HEAD", f"/v2/{REPO}/manifests/{reference}", headers={"Accept": f"{OCI_INDEX}, {media_type}"})
        assert head.status_code == 200 and head.content == b"", reference
        assert head.headers["Content-Type"] == media_type and head.headers["Content-Length"] == str(len(body))
        assert head.headers.get("Docker-Content-Digest", dig) == dig
        got = reg.do("GET", f"/v2/{REPO}/manifests/{reference}", headers={"Accept": f"{OCI_INDEX}, {media_type}"})
        assert got.status_code == 200 and got.content == body and got.headers["Content-Type"] == media_type
    for dig, body in data.blobs.items():
        check_blob(reg, REPO, dig, body)


def check_referrers(reg, data: DataSet):
    for subject, goals in data.referrers.items():
        answer = reg.do("GET", f"/v2/{REPO}/referrers/{subject}")
        assert answer.status_code == 200 and answer.headers["Content-Type"] == OCI_INDEX
        index = answer.json()
        assert index["mediaType"] == OCI_INDEX and index["schemaVersion"] == 2
        for goal in goals:
            assert _listed(goal, index["manifests"]), goal
        for artifact_type in {goal["artifactType"] for goal in goals}:
            filtered = reg.do("GET", f"/v2/{REPO}/referrers/{subject}", params={"artifactType": artifact_type})
            assert "artifactType" in [f.strip() for f in filtered.headers.get("OCI-Filters-Applied", "").split(",")]
            found = filtered.json()["manifests"]
            assert all(entry.get("artifactType") == artifact_type for entry in found)
            assert all(_listed(goal, found) for goal in goals if goal["artifactType"] == artifact_type)


def _listed(goal, entries) -> bool:
    return any(entry["digest"] == goal["digest"] and entry["mediaType"] == goal["mediaType"]
               and entry["size"] == goal["size"] and entry.get("artifactType") == goal["artifactType"]
               and all(entry.get("annotations", {}).get(k) == v for k, v in (goal.get("annotations") or {}).items())
               for entry in entries)


def check_delete(reg, data: DataSet):
    before = len(reg.do("GET", f"/v2/{REPO}/tags/list").json()["tags"])
    for tag in data.tags:
        assert reg.do("DELETE", f"/v2/{REPO}/manifests/{tag}").status_code == 202
        assert reg.do("HEAD", f"/v2/{REPO}/manifests/{tag}").status_code == 404
    if data.tags:
        after = reg.do("GET", f"/v2/{REPO}/tags/list")
        assert after.status_code == 404 or len(after.json()["tags"]) < before
    for dig in reversed([dig for dig in data.manifests if dig not in data.bad_digest]):
        assert reg.do("DELETE", f"/v2/{REPO}/manifests/{dig}").status_code in (202, 404)
        assert reg.do("HEAD", f"/v2/{REPO}/manifests/{dig}").status_code == 404
    for dig in data.blobs:
        delete_blob(reg, REPO, dig)


@pytest.mark.parametrize("name", list(data_sets()))
def test_data_set(reg, name):
    data = data_sets()[name]
    push_data(reg, data)
    if data.tags:
        check_listing(reg, data)
    check_pull(reg, data)
    check_referrers(reg, data)
    check_delete(reg, data)


# --- discovery of an empty repository, and manifest errors (run.go TestEmpty, TestManifestErrors) ------

def test_empty_repository_lists_and_referrers(reg):
    tags = reg.do("GET", "/v2/acme/conformance-empty/tags/list")
    assert tags.status_code == 404 or tags.json()["tags"] == []
    referrers = reg.do("GET", f"/v2/acme/conformance-empty/referrers/{digest(os.urandom(16))}")
    assert referrers.status_code == 200 and referrers.headers["Content-Type"] == OCI_INDEX
    assert referrers.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_manifest_errors(reg):
    assert reg.do("GET", f"/v2/{REPO}/manifests/{digest(os.urandom(1024))}").status_code == 404
    assert reg.do("GET", f"/v2/{REPO}/manifests/missing-{os.urandom(8).hex()}").status_code == 404
    data = DataSet("invalid-manifest-digest")
    dig = data.image(layer_count=1)
    for blob_digest, body in data.blobs.items():
        push_post_only(reg, REPO, blob_digest, body)
    body = data.manifests[dig]
    put = reg.do("PUT", f"/v2/{REPO}/manifests/sha256:baddigeststring", data=body,
                 headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert put.status_code == 400
    assert reg.do("GET", f"/v2/{REPO}/manifests/sha256:baddigeststring").status_code in (400, 404)
    # v1.1 push: a manifest naming a blob the repository lacks is refused with MANIFEST_BLOB_UNKNOWN
    other = DataSet("unknown-blob")
    unknown = other.image(layer_count=1)
    refused = reg.do("PUT", f"/v2/{REPO}/manifests/v1", data=other.manifests[unknown],
                     headers={"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"


# --- checks of the v1.1 suite the redesigned program does not repeat (01_pull, 02_push) ----------------

SPEC_CODES = {"BLOB_UNKNOWN", "BLOB_UPLOAD_INVALID", "BLOB_UPLOAD_UNKNOWN", "DIGEST_INVALID", "MANIFEST_BLOB_UNKNOWN",
              "MANIFEST_INVALID", "MANIFEST_UNKNOWN", "NAME_INVALID", "NAME_UNKNOWN", "SIZE_INVALID", "UNAUTHORIZED",
              "DENIED", "UNSUPPORTED", "TOOMANYREQUESTS"}


def test_v1_1_chunk_retry_stale_session_and_error_codes(reg):
    body = os.urandom(3 * CHUNK_MIN)
    location = reg.start(REPO)
    first = {"Content-Range": f"0-{CHUNK_MIN - 1}", "Content-Type": "application/octet-stream"}
    location = reg.location(reg.do("PATCH", location, data=body[:CHUNK_MIN], headers=first), 202)
    # Retry previous blob chunk should return 416
    assert reg.do("PATCH", location, data=body[:CHUNK_MIN], headers=first).status_code == 416
    # Get on stale blob upload should return 204 with a range and location
    stale = reg.do("GET", location)
    assert stale.status_code == 204 and stale.headers["Range"] == f"0-{CHUNK_MIN - 1}" and stale.headers["Location"]
    rest = {"Content-Range": f"{CHUNK_MIN}-{len(body) - 1}", "Content-Type": "application/octet-stream"}
    location = reg.location(reg.do("PATCH", location, data=body[CHUNK_MIN:], headers=rest), 202)
    done = reg.do("PUT", location, params={"digest": digest(body)}, headers={"Content-Length": "0"})
    reg.verify_location(reg.location(done, 201), body)
    # Every 404 carries an error body whose code is one of the spec's
    for path in (f"/v2/{REPO}/blobs/{digest(os.urandom(8))}", f"/v2/{REPO}/manifests/{digest(os.urandom(8))}",
                 f"/v2/{REPO}/manifests/no-such-tag", f"/v2/{REPO}/blobs/uploads/{os.urandom(16).hex()}"):
        missing = reg.do("GET", path)
        assert missing.status_code == 404 and missing.json()["errors"][0]["code"] in SPEC_CODES, path
        if "/uploads/" not in path:  # an upload session answers GET, PATCH, PUT and DELETE only
            assert reg.do("HEAD", path).status_code == 404
