"""Worker tasks of the registry (scheduled by `manage.py setup_schedules`). Each is safe to run twice
at once and to be killed at any line (registry/gc.py)."""

import logging

from django.conf import settings

from registry.gc import gc_run, uploads_reclaim

log = logging.getLogger(__name__)


def reclaim_uploads() -> int:
    """Discard expired and idle upload sessions with their bytes, and upload bytes without a session."""
    report = uploads_reclaim()
    if report.counts:
        log.info("registry uploads: %s", "; ".join(report.lines()[:2]))
    return report.count("uploads")


# The schedule's name before reclaim_uploads: a worker still holding the old schedule row keeps working.
expire_uploads = reclaim_uploads


def collect_garbage() -> dict:
    """The whole collection: uploads, unreferenced links and blobs, orphaned blob files."""
    # Half the task timeout: a run ends on its own and the next one continues where it stopped.
    report = gc_run(budget_seconds=settings.TRAIN_TASK_TIMEOUT_SECONDS / 2)
    for line in report.lines():
        log.info("registry gc: %s", line)
    return dict(report.counts)
