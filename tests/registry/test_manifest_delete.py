"""DELETE of manifests by tag and by digest (end-9), recorded in the tag history."""

from registry.models import Manifest, Tag, TagEvent
from tests.registry.conftest import error_code


def test_delete_by_tag_removes_only_the_tag(v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    assert v2_operator.request("DELETE", "/v2/acme/app/manifests/v1").status_code == 202
    assert not Tag.objects.exists()
    assert v2_operator.get(f"/v2/acme/app/manifests/{digest}").status_code == 200
    event = TagEvent.objects.first()
    assert (event.old_digest, event.new_digest) == (digest, "")


def test_delete_by_digest_removes_the_manifest_and_its_tags(v2_operator):
    digest, _ = v2_operator.push_image("acme/app", "v1")
    v2_operator.push_manifest("acme/app", "v2", json_of(v2_operator, "v1"))
    assert v2_operator.request("DELETE", f"/v2/acme/app/manifests/{digest}").status_code == 202
    assert not Manifest.objects.exists() and not Tag.objects.exists()
    assert TagEvent.objects.filter(new_digest="").count() == 2
    assert v2_operator.get("/v2/acme/app/manifests/v1").status_code == 404


def json_of(v2, tag):
    import json

    return json.loads(v2.get(f"/v2/acme/app/manifests/{tag}").content)


def test_delete_of_unknown_manifest_is_404(v2_operator):
    v2_operator.push_image("acme/app", "v1")
    assert error_code(v2_operator.request("DELETE", "/v2/acme/app/manifests/nope")) == "MANIFEST_UNKNOWN"
    assert v2_operator.request("DELETE", "/v2/acme/none/manifests/v1").status_code == 404


def test_members_and_viewers_cannot_delete(v2_operator, v2_member, v2_viewer):
    v2_operator.push_image("acme/app", "v1")
    for v2 in (v2_member, v2_viewer):
        response = v2.request("DELETE", "/v2/acme/app/manifests/v1")
        assert response.status_code == 403 and error_code(response) == "DENIED"
    assert Tag.objects.exists()


def test_another_account_cannot_delete(v2_operator, v2_outsider):
    v2_operator.push_image("acme/app", "v1")
    assert v2_outsider.request("DELETE", "/v2/acme/app/manifests/v1").status_code == 403
