"""The referrers API (end-12) and OCI-Subject on manifests that name a subject."""

import json

from tests.registry.conftest import OCI_CONFIG, OCI_INDEX, OCI_MANIFEST


def push_referrer(v2, subject_digest, artifact_type, seed):
    config = json.dumps({"seed": seed}).encode()
    document = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
                "config": {"mediaType": OCI_CONFIG, "digest": v2.push_blob("acme/app", config), "size": len(config)},
                "layers": [], "subject": {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": 1},
                "annotations": {"seed": seed}}
    return v2.push_manifest("acme/app", f"ref-{seed}", document)


def test_manifest_with_subject_answers_oci_subject(v2_operator):
    subject, _ = v2_operator.push_image("acme/app", "v1")
    response = push_referrer(v2_operator, subject, "application/vnd.example.sbom", "1")
    assert response.status_code == 201
    assert response["OCI-Subject"] == subject


def test_referrers_lists_descriptors_and_filters_by_artifact_type(v2_operator):
    subject, _ = v2_operator.push_image("acme/app", "v1")
    sbom = push_referrer(v2_operator, subject, "application/vnd.example.sbom", "1")["Docker-Content-Digest"]
    push_referrer(v2_operator, subject, "application/vnd.example.signature", "2")
    response = v2_operator.get(f"/v2/acme/app/referrers/{subject}")
    assert response.status_code == 200 and response["Content-Type"] == OCI_INDEX
    index = response.json()
    assert index["schemaVersion"] == 2 and len(index["manifests"]) == 2
    filtered = v2_operator.get(f"/v2/acme/app/referrers/{subject}",
                               query={"artifactType": "application/vnd.example.sbom"})
    assert filtered["OCI-Filters-Applied"] == "artifactType"
    [descriptor] = filtered.json()["manifests"]
    assert descriptor["digest"] == sbom and descriptor["artifactType"] == "application/vnd.example.sbom"
    assert descriptor["annotations"] == {"seed": "1"} and descriptor["mediaType"] == OCI_MANIFEST


def test_subject_need_not_exist_and_unknown_subject_gives_an_empty_index(v2_operator):
    v2_operator.push_image("acme/app", "v1")
    missing = "sha256:" + "6" * 64
    assert push_referrer(v2_operator, missing, "application/vnd.example.sbom", "3").status_code == 201
    assert v2_operator.get("/v2/acme/app/referrers/sha256:" + "7" * 64).json()["manifests"] == []


def test_another_account_cannot_list_referrers(v2_operator, v2_outsider):
    subject, _ = v2_operator.push_image("acme/app", "v1")
    assert v2_outsider.get(f"/v2/acme/app/referrers/{subject}").status_code == 403


def test_referrers_page_with_link_and_read_content_only_for_the_page(v2_operator):
    from unittest import mock

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from registry import views_manifests

    subject, _ = v2_operator.push_image("acme/app", "v1")
    pushed = [push_referrer(v2_operator, subject, "application/vnd.example.sbom", str(n)) for n in range(5)]
    digests = sorted(response["Docker-Content-Digest"] for response in pushed)
    path = f"/v2/acme/app/referrers/{subject}"
    v2_operator.get(path)  # the token, fetched outside the measured requests
    with CaptureQueriesContext(connection) as queries, \
            mock.patch.object(views_manifests, "annotations_of", wraps=views_manifests.annotations_of) as parsed:
        first = v2_operator.get(path, query={"n": 2})
    assert [d["digest"] for d in first.json()["manifests"]] == digests[:2]
    assert first.json()["manifests"][0]["annotations"]["seed"]
    assert first["Link"] == f'<{path}?n=2&last={digests[1].replace(":", "%3A")}>; rel="next"'
    assert parsed.call_count == 2  # two manifests read, not five
    content_reads = [q["sql"] for q in queries.captured_queries if '"registry_manifest"."content"' in q["sql"]]
    assert len(content_reads) == 1

    seen, url = [], first["Link"][1:first["Link"].index(">")]
    while url:
        page = v2_operator.get(url)
        seen += [d["digest"] for d in page.json()["manifests"]]
        url = page["Link"][1:page["Link"].index(">")] if page.has_header("Link") else ""
    assert seen == digests[2:]


def test_referrers_link_keeps_the_artifact_type_filter(v2_operator):
    subject, _ = v2_operator.push_image("acme/app", "v1")
    for n in range(3):
        push_referrer(v2_operator, subject, "application/vnd.example.sbom", str(n))
    push_referrer(v2_operator, subject, "application/vnd.example.signature", "s")
    response = v2_operator.get(f"/v2/acme/app/referrers/{subject}",
                               query={"n": 2, "artifactType": "application/vnd.example.sbom"})
    assert len(response.json()["manifests"]) == 2
    assert "artifactType=application%2Fvnd.example.sbom" in response["Link"]


def test_large_referrers_are_read_in_bounded_batches(v2_operator, monkeypatch):
    from registry import views_manifests

    monkeypatch.setattr(views_manifests, "REFERRER_CONTENT_BATCH_BYTES", 1)
    subject, _ = v2_operator.push_image("acme/app", "v1")
    for n in range(3):
        push_referrer(v2_operator, subject, "application/vnd.example.sbom", str(n))
    listed = v2_operator.get(f"/v2/acme/app/referrers/{subject}").json()["manifests"]
    assert sorted(d["annotations"]["seed"] for d in listed) == ["0", "1", "2"]


def test_repository_without_manifests_answers_an_empty_index(v2_operator):
    # Never pushed to, and pushed to with blobs only: both are an empty index, never a 404.
    for name in ("acme/never-pushed", "acme/blobs-only"):
        if name == "acme/blobs-only":
            v2_operator.push_blob(name, b"a blob")
        response = v2_operator.get(f"/v2/{name}/referrers/sha256:" + "7" * 64)
        assert response.status_code == 200 and response["Content-Type"] == OCI_INDEX
        assert json.loads(response.content) == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


def test_filtered_empty_answer_says_the_filter_was_applied(v2_operator):
    response = v2_operator.get("/v2/acme/none/referrers/sha512:" + "7" * 128,
                               query={"artifactType": "application/vnd.example.sbom"})
    assert response.status_code == 200 and response.json()["manifests"] == []
    assert response["OCI-Filters-Applied"] == "artifactType"


def test_digest_of_another_algorithm_has_no_referrers(v2_operator):
    response = v2_operator.get("/v2/acme/app/referrers/blake3:" + "7" * 64)
    assert response.status_code == 200 and response.json()["manifests"] == []
