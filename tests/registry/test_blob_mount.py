"""Cross-repository mount (end-11): only from a repository the caller may pull, where the blob is linked."""

import os

from registry.models import RepositoryBlob

DATA = os.urandom(2000)


def mount(v2, name, digest, source):
    return v2.request("POST", f"/v2/{name}/blobs/uploads/", query={"mount": digest, "from": source})


def test_mount_within_the_account_links_the_blob(v2_operator):
    digest = v2_operator.push_blob("acme/one", DATA)
    response = mount(v2_operator, "acme/two", digest, "acme/one")
    assert response.status_code == 201
    assert response["Location"] == f"/v2/acme/two/blobs/{digest}"
    assert response["Docker-Content-Digest"] == digest
    assert v2_operator.get(f"/v2/acme/two/blobs/{digest}").getvalue() == DATA


def test_mount_of_a_blob_the_source_does_not_have_falls_back_to_an_upload(v2_operator):
    v2_operator.push_blob("acme/one", DATA)
    digest = v2_operator.push_blob("acme/three", b"elsewhere")
    response = mount(v2_operator, "acme/two", digest, "acme/one")
    assert response.status_code == 202 and response["Location"].startswith("/v2/acme/two/blobs/uploads/")


def test_mount_from_another_account_falls_back_and_links_nothing(v2_operator, v2_outsider):
    digest = v2_operator.push_blob("acme/app", DATA)
    response = mount(v2_outsider, "globex/app", digest, "acme/app")
    assert response.status_code == 202
    assert not RepositoryBlob.objects.filter(repository__name="globex/app").exists()
    assert v2_outsider.head(f"/v2/globex/app/blobs/{digest}").status_code == 404


def test_mount_without_pull_in_the_token_falls_back(client, v2_operator, operator):
    digest = v2_operator.push_blob("acme/one", DATA)
    token = v2_operator.token("repository:acme/two:pull,push")  # no pull on acme/one
    response = client.post(f"/v2/acme/two/blobs/uploads/?mount={digest}&from=acme/one",
                           HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 202


def test_mount_with_an_invalid_source_name_falls_back(v2_operator):
    digest = v2_operator.push_blob("acme/one", DATA)
    assert mount(v2_operator, "acme/two", digest, "../acme/one").status_code == 202
