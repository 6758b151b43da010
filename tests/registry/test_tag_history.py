"""Every tag move is a TagEvent (old digest, new digest, who, when), listed by GET /v1/images and
/v1/images/{repo}/tags/{tag}/history."""

from registry.models import TagEvent


def test_pushes_record_every_move(v2_operator):
    first, _ = v2_operator.push_image("acme/app", "latest", seed="1")
    v2_operator.push_image("acme/app", "latest", seed="1")  # same digest again: not a move
    second, _ = v2_operator.push_image("acme/app", "latest", seed="2")
    events = list(TagEvent.objects.order_by("id").values_list("old_digest", "new_digest"))
    assert events == [("", first), (first, second)]
    assert TagEvent.objects.first().actor.startswith("olivia (key ")


def test_images_api_lists_repositories_tags_digests_and_sizes(api, operator, v2_operator, v2_outsider):
    digest, document = v2_operator.push_image("acme/app", "v1")
    v2_outsider.push_image("globex/hidden", "v1")
    response = api.get("/v1/images", **operator.headers)
    assert response.status_code == 200
    [repository] = response.json()["results"]
    assert repository["name"] == "acme/app" and repository["last_push_at"]
    [tag] = repository["tags"]
    expected_size = document["config"]["size"] + sum(layer["size"] for layer in document["layers"])
    assert tag == {**tag, "name": "v1", "digest": digest, "size": expected_size}


def test_images_api_needs_an_api_key(api, db):
    assert api.get("/v1/images").status_code == 401


def test_tag_history_api(api, viewer, v2_operator):
    first, _ = v2_operator.push_image("acme/app", "latest", seed="1")
    second, _ = v2_operator.push_image("acme/app", "latest", seed="2")
    response = api.get("/v1/images/acme/app/tags/latest/history", **viewer.headers)
    assert response.status_code == 200
    moves = [(e["old_digest"], e["new_digest"]) for e in response.json()["results"]]
    assert moves == [(first, second), ("", first)]
    assert response.json()["results"][0]["actor"].startswith("olivia")


def test_tag_history_of_another_accounts_repository_is_404(api, outsider, v2_operator):
    v2_operator.push_image("acme/app", "latest")
    assert api.get("/v1/images/acme/app/tags/latest/history", **outsider.headers).status_code == 404


def test_tag_history_of_a_tag_that_never_existed_is_404(api, viewer, v2_operator):
    v2_operator.push_image("acme/app", "latest")
    response = api.get("/v1/images/acme/app/tags/never/history", **viewer.headers)
    assert response.status_code == 404
    assert api.get("/v1/images/acme/nothing/tags/latest/history", **viewer.headers).status_code == 404


def test_a_deleted_tag_keeps_its_history(api, viewer, v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "old")
    assert v2_operator.request("DELETE", f"/v2/acme/app/manifests/{digest}").status_code == 202
    response = api.get("/v1/images/acme/app/tags/old/history", **viewer.headers)
    assert response.status_code == 200  # the repository holds no manifest now; its history remains
    assert [(e["old_digest"], e["new_digest"]) for e in response.json()["results"]] == [(digest, ""), ("", digest)]
