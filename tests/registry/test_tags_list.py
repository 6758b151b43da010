"""GET /v2/<name>/tags/list: sorted bytewise, `n` and `last`, Link (end-8; reliability bad input 31)."""

from registry.models import Manifest, Repository, Tag
from tests.registry.conftest import error_code

TAGS = ["b", "a", "B", "v1.10", "v1.9", "_x", "latest"]


def tagged(v2):
    digest, _ = v2.push_image("acme/app", TAGS[0])
    manifest = Manifest.objects.get(digest=digest)
    for name in TAGS[1:]:
        Tag.objects.create(repository=Repository.objects.get(name="acme/app"), name=name, manifest=manifest)


def test_tags_are_sorted_bytewise(v2_operator):
    tagged(v2_operator)
    response = v2_operator.get("/v2/acme/app/tags/list")
    assert response.json() == {"name": "acme/app", "tags": sorted(TAGS)}
    assert "Link" not in response


def test_n_and_last_paginate_with_link(v2_operator):
    tagged(v2_operator)
    first = v2_operator.get("/v2/acme/app/tags/list", query={"n": 3})
    assert first.json()["tags"] == sorted(TAGS)[:3]
    assert first["Link"] == f'</v2/acme/app/tags/list?n=3&last={sorted(TAGS)[2]}>; rel="next"'
    second = v2_operator.get("/v2/acme/app/tags/list", query={"n": 3, "last": sorted(TAGS)[2]})
    assert second.json()["tags"] == sorted(TAGS)[3:6]
    third = v2_operator.get("/v2/acme/app/tags/list", query={"n": 3, "last": sorted(TAGS)[5]})
    assert third.json()["tags"] == sorted(TAGS)[6:] and "Link" not in third


def test_n_zero_and_negative_give_an_empty_list(v2_operator):
    tagged(v2_operator)
    for n in (0, -1):
        response = v2_operator.get("/v2/acme/app/tags/list", query={"n": n})
        assert response.json()["tags"] == [] and "Link" not in response


def test_huge_n_is_clamped(v2_operator, settings):
    tagged(v2_operator)
    settings.TRAIN_REGISTRY_MAX_PAGE = 2
    response = v2_operator.get("/v2/acme/app/tags/list", query={"n": "1e9"})
    assert len(response.json()["tags"]) == 2 and "n=2" in response["Link"]


def test_non_numeric_n_is_400(v2_operator):
    tagged(v2_operator)
    response = v2_operator.get("/v2/acme/app/tags/list", query={"n": "lots"})
    assert response.status_code == 400 and error_code(response) == "PAGINATION_NUMBER_INVALID"


def test_last_is_data_not_sql(v2_operator):
    tagged(v2_operator)
    response = v2_operator.get("/v2/acme/app/tags/list", query={"last": "' OR 1=1 --"})
    assert response.status_code == 200 and response.json()["tags"] == sorted(t for t in TAGS if t > "' OR 1=1 --")


def test_unknown_repository_is_404(v2_operator):
    response = v2_operator.get("/v2/acme/none/tags/list")
    assert response.status_code == 404 and error_code(response) == "NAME_UNKNOWN"


def test_another_accounts_tags_are_denied(v2_operator, v2_outsider):
    tagged(v2_operator)
    assert v2_outsider.get("/v2/acme/app/tags/list").status_code == 403
