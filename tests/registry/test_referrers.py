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
