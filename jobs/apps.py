import logging

from django.apps import AppConfig

log = logging.getLogger(__name__)


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Training jobs"

    def ready(self):
        from registry.signals import tag_pushed

        tag_pushed.connect(_mirror_pushed_tag, dispatch_uid="jobs.mirror_on_push")


def _mirror_pushed_tag(sender, *, account_id, repository, tag, digest, **kwargs):
    """mirror_on_push: a pushed tag starts its mirrors before any job asks for them."""
    from jobs.mirroring import mirror_on_push

    try:
        mirror_on_push(account_id=account_id, repository=repository, digest=digest)
    except Exception:  # the push has committed: a mirror that did not start must not fail its response
        log.exception("mirror_on_push for %s@%s failed; a job needing it starts the mirror", repository, digest)
