import shutil

import pytest
from django.conf import settings

from tests.support.processes import wait_until


@pytest.fixture
def fresh_faults():
    """Fault markers fire once per data dir; start each test with none fired."""
    shutil.rmtree(settings.TRAIN_DATA_DIR / "faults-fired", ignore_errors=True)


def wait_for_status(api, caller, job_id, statuses, timeout=90):
    def reached():
        body = api.get(f"/v1/jobs/{job_id}", **caller.headers).json()
        return body if body["status"] in statuses else None

    return wait_until(reached, timeout=timeout, interval=0.5, message=f"{job_id} to reach {statuses}")
