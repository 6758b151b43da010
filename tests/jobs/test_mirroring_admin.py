"""The Mirror admin pages: progress, error and target in the list, search by digest, and a "retry"
that puts FAILED mirrors back in line for the worker's sweep (which then re-drives their jobs)."""

import pytest

from jobs.sweeping import jobs_sweep
from registry.models import Mirror, MirrorState, Repository
from tests.registry.conftest import v2_operator  # noqa: F401 (a fixture)
from tests.support.jobs import queued_tasks

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/registry/mirror/"


@pytest.fixture
def mirrors(v2_operator):  # noqa: F811
    digest, _ = v2_operator.push_image("acme/app", "v1")
    repository = Repository.objects.get(name="acme/app")
    failed = Mirror.objects.create(repository=repository, manifest_digest=digest, target_registry="ecr.example.com",
                                   target_repository="train/acme/app", state=MirrorState.FAILED,
                                   error="the target refused the credentials (401)")
    done = Mirror.objects.create(repository=repository, manifest_digest=digest, target_registry="acr.example.com",
                                 target_repository="train/acme/app", state=MirrorState.DONE,
                                 bytes_done=2_500_000_000, bytes_total=2_500_000_000, blobs_done=3, blobs_total=3)
    return failed, done


def test_the_list_shows_state_progress_error_and_target(staff_client, mirrors):
    failed, done = mirrors
    page = staff_client.get(CHANGELIST).content.decode()
    assert "ecr.example.com/train/acme/app" in page
    assert "the target refused the credentials (401)" in page
    assert "2.50 of 2.50 GB, 3 of 3 blobs" in page
    found = staff_client.get(CHANGELIST, {"q": failed.manifest_digest[7:20]}).content.decode()
    assert f"{CHANGELIST}{failed.pk}/change/" in found and f"{CHANGELIST}{done.pk}/change/" in found
    missing = staff_client.get(CHANGELIST, {"q": "sha256:0000"}).content.decode()
    assert f"{CHANGELIST}{failed.pk}/change/" not in missing
    assert staff_client.get(f"{CHANGELIST}{failed.pk}/change/").status_code == 200


def test_retry_puts_failed_mirrors_back_in_line_for_the_sweep(staff_client, mirrors):
    failed, done = mirrors
    response = staff_client.post(CHANGELIST, {"action": "retry", "_selected_action": [failed.pk, done.pk]},
                                 follow=True)
    message = response.content.decode()
    assert "1 mirror(s) put back in line" in message and "1 were not FAILED" in message
    failed.refresh_from_db()
    done.refresh_from_db()
    assert (failed.state, failed.error) == (MirrorState.PENDING, "")
    assert done.state == MirrorState.DONE
    jobs_sweep()
    assert [args[0] for func, args in queued_tasks() if func == "jobs.tasks.mirror_image"] == [failed.pk]
