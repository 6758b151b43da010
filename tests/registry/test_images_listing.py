"""GET /v1/images and GET /v1/images/{repo}/tags stay bounded: the first tags of each repository
inline with a count, the rest paginated, repositories without a manifest hidden, and manifest
content never read."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.api import TAGS_PER_REPOSITORY
from registry.models import Manifest, Mirror, MirrorState, Repository, Tag

pytestmark = pytest.mark.django_db


def tag_many(repository_name, count):
    """`count` extra tags on the repository's one manifest (rows, not pushes: the listing is what is tested)."""
    repository = Repository.objects.get(name=repository_name)
    manifest = Manifest.objects.filter(repository=repository).first()
    Tag.objects.bulk_create(Tag(repository=repository, name=f"t{n:03}", manifest=manifest) for n in range(count))


def selects_content(queries) -> list[str]:
    return [q["sql"] for q in queries if "content" in q["sql"].lower()]


def test_each_repository_shows_its_first_tags_and_a_count(api, operator, v2_operator):
    v2_operator.push_image("acme/app", "v1")
    tag_many("acme/app", TAGS_PER_REPOSITORY + 5)
    v2_operator.push_image("acme/small", "only")
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/v1/images", **operator.headers)
    assert response.status_code == 200
    by_name = {repository["name"]: repository for repository in response.json()["results"]}
    app = by_name["acme/app"]
    assert app["tag_count"] == TAGS_PER_REPOSITORY + 6
    assert [tag["name"] for tag in app["tags"]] == [f"t{n:03}" for n in range(TAGS_PER_REPOSITORY)]
    assert app["tags_url"] == "http://testserver/v1/images/acme/app/tags"
    assert by_name["acme/small"]["tag_count"] == 1 and by_name["acme/small"]["tags"][0]["name"] == "only"
    assert selects_content(queries.captured_queries) == []
    assert len(queries.captured_queries) <= 8  # not one query per repository or per tag


def test_the_tag_list_pages_through_every_tag_without_reading_content(api, viewer, v2_operator):
    v2_operator.push_image("acme/app", "v1")
    tag_many("acme/app", 7)
    seen, url = [], "/v1/images/acme/app/tags?page_size=3"
    with CaptureQueriesContext(connection) as queries:
        while url:
            page = api.get(url, **viewer.headers)
            assert page.status_code == 200, page.content
            seen += [tag["name"] for tag in page.json()["results"]]
            url = page.json()["next"]
    assert seen == [f"t{n:03}" for n in range(7)] + ["v1"]
    assert page.json()["results"][-1]["digest"].startswith("sha256:")
    assert selects_content(queries.captured_queries) == []


def test_the_tag_list_of_another_account_or_an_unknown_repository_is_404(api, outsider, operator, v2_operator):
    v2_operator.push_image("acme/app", "v1")
    assert api.get("/v1/images/acme/app/tags", **outsider.headers).status_code == 404
    assert api.get("/v1/images/acme/nothing/tags", **operator.headers).status_code == 404


def test_a_repository_without_a_manifest_is_not_listed(api, operator, v2_operator):
    v2_operator.push_blob("acme/abandoned", b"a layer whose manifest never came")
    v2_operator.push_image("acme/app", "v1")
    assert [r["name"] for r in api.get("/v1/images", **operator.headers).json()["results"]] == ["acme/app"]
    assert api.get("/v1/images/acme/abandoned/tags", **operator.headers).status_code == 404
    assert v2_operator.get("/v2/_catalog").json() == {"repositories": ["acme/app"]}


def test_each_tag_shows_its_manifests_mirrors_in_one_query(api, operator, v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    v2_operator.push_image("acme/other", "v1", seed="other")
    repository = Repository.objects.get(name="acme/app")
    Mirror.objects.create(repository=repository, manifest_digest=digest, target_registry="ecr.example.com",
                          target_repository="train/acme/app", state=MirrorState.COPYING, bytes_done=5, bytes_total=9)
    Mirror.objects.create(repository=repository, manifest_digest=digest, target_registry="acr.example.com",
                          target_repository="train/acme/app", state=MirrorState.FAILED, error="401 refused")
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/v1/images", **operator.headers)
    by_name = {repository["name"]: repository for repository in response.json()["results"]}
    mirrors = by_name["acme/app"]["tags"][0]["mirrors"]
    assert [(m["registry"], m["state"], m["bytes_done"], m["bytes_total"], m["error"]) for m in mirrors] == [
        ("acr.example.com", "FAILED", 0, 0, "401 refused"), ("ecr.example.com", "COPYING", 5, 9, "")]
    assert mirrors[0]["repository"] == "train/acme/app"
    assert by_name["acme/other"]["tags"][0]["mirrors"] == []
    assert len([q for q in queries.captured_queries if "registry_mirror" in q["sql"]]) == 1
    assert selects_content(queries.captured_queries) == []
    tags = api.get("/v1/images/acme/app/tags", **operator.headers).json()["results"]
    assert [m["state"] for m in tags[0]["mirrors"]] == ["FAILED", "COPYING"]


def test_another_accounts_mirrors_are_not_shown(api, outsider, v2_outsider, v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    v2_outsider.push_image("globex/app", "v1")
    Mirror.objects.create(repository=Repository.objects.get(name="acme/app"), manifest_digest=digest,
                          target_registry="ecr.example.com", target_repository="train/acme/app")
    listed = api.get("/v1/images", **outsider.headers).json()["results"]
    assert [tag["mirrors"] for repository in listed for tag in repository["tags"]] == [[]]
