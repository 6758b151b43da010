"""Worker tasks of the registry (scheduled by `manage.py setup_schedules`)."""

import logging

from registry.services import uploads_expire

log = logging.getLogger(__name__)


def expire_uploads() -> int:
    """Discard upload sessions older than TRAIN_REGISTRY_UPLOAD_TTL_SECONDS, with their bytes."""
    count = uploads_expire()
    if count:
        log.info("discarded %d expired registry uploads", count)
    return count
