"""Admin pages for repositories, tags with history and manifests: read-only and searchable by digest."""

import pytest

from registry.models import Manifest, Repository, Tag


@pytest.fixture
def staff(staff_client):
    return staff_client


def test_registry_admin_pages_render_and_search_by_digest(staff, v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    for url in ["/admin/registry/repository/", "/admin/registry/tag/", "/admin/registry/manifest/",
                "/admin/registry/tagevent/", "/admin/registry/blob/", "/admin/registry/upload/"]:
        assert staff.get(url).status_code == 200, url
    found = staff.get("/admin/registry/manifest/", {"q": digest})
    assert digest in found.content.decode()
    assert "acme/app" in staff.get("/admin/registry/repository/", {"q": digest}).content.decode()
    tag = Tag.objects.get()
    page = staff.get(f"/admin/registry/tag/{tag.pk}/change/").content.decode()
    assert digest in page and "history" in page
    assert staff.get(f"/admin/registry/repository/{Repository.objects.get().pk}/change/").status_code == 200
    assert staff.get(f"/admin/registry/manifest/{Manifest.objects.get().pk}/change/").status_code == 200


def test_registry_admin_is_read_only(staff, v2_operator):
    v2_operator.push_image("acme/app", "v1")
    assert staff.get("/admin/registry/repository/add/").status_code == 403
    tag = Tag.objects.get()
    assert staff.post(f"/admin/registry/tag/{tag.pk}/delete/", {"post": "yes"}).status_code == 403
    assert Tag.objects.exists()


def test_registry_admin_pages_never_read_manifest_content(staff, v2_operator):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    v2_operator.push_image("acme/app", "v1")
    v2_operator.push_image("acme/app", "v2", seed="2")
    tag, manifest = Tag.objects.first(), Manifest.objects.first()
    pages = ["/admin/registry/tag/", f"/admin/registry/tag/{tag.pk}/change/", "/admin/registry/manifest/",
             f"/admin/registry/manifest/{manifest.pk}/change/", "/admin/registry/repository/",
             f"/admin/registry/repository/{Repository.objects.get().pk}/change/"]
    for url in pages:
        with CaptureQueriesContext(connection) as queries:
            response = staff.get(url)
        assert response.status_code == 200, url
        assert manifest.digest in response.content.decode() or "acme/app" in response.content.decode()
        reads = [q["sql"] for q in queries.captured_queries if '"registry_manifest"."content"' in q["sql"]]
        assert reads == [], url
