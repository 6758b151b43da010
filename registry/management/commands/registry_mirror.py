"""`manage.py registry_mirror ACCOUNT/REPO[:TAG|@DIGEST] --to URL/REPO [--username U --password-env VAR]`:
copy one image of Train's registry into any OCI registry, by digest, through the same Mirror rows and
copier the job workflow uses. For operators: to check a target's credentials and network path, or to
pre-seed a registry. Progress is saved, so running it again after an interruption continues."""

import os
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from registry.client import Credentials
from registry.mirror import MirrorTarget, mirror_ensure, mirror_progress_text, mirror_run
from registry.models import Mirror, MirrorState, Repository
from registry.reference import InvalidReference, parse_reference
from registry.resolve import ImageNotFound, image_pin


class Command(BaseCommand):
    help = __doc__.split("\n\n")[0]

    def add_arguments(self, parser):
        parser.add_argument("image", help="account/repository[:tag|@digest] in Train's registry")
        parser.add_argument("--to", required=True, help="http(s)://host[:port]/repository of the target")
        parser.add_argument("--username", default="")
        parser.add_argument("--password-env", default="", help="environment variable holding the password")
        parser.add_argument("--parallel", type=int, default=4, help="blobs copied at once (default 4)")

    def handle(self, *args, **options):
        try:
            ref = parse_reference(options["image"])
        except InvalidReference as exc:
            raise CommandError(str(exc)) from exc
        repository = Repository.objects.filter(name=ref.path).first()
        if repository is None:
            raise CommandError(f"no repository {ref.path} in Train's registry")
        try:
            digest = image_pin(account_id=repository.account_id, path=ref.path, tag=ref.tag, digest=ref.digest)
        except ImageNotFound as exc:
            raise CommandError(str(exc)) from exc
        target = self._target(options)
        mirror = mirror_ensure(repository=repository, digest=digest, target=target)
        if mirror.state == MirrorState.FAILED:
            Mirror.objects.filter(pk=mirror.pk).update(state=MirrorState.PENDING, error="")
        result = mirror_run(mirror_id=mirror.pk, target=target)
        if result is None:
            mirror.refresh_from_db()
            raise CommandError(f"another worker is copying this mirror ({mirror_progress_text(mirror, target.label)})")
        if result.state != MirrorState.DONE:
            raise CommandError(mirror_progress_text(result, target.label))
        self.stdout.write(f"{result.target_reference} ({result.blobs_total} blobs, {result.bytes_total} bytes)")

    @staticmethod
    def _target(options) -> MirrorTarget:
        parts = urlsplit(options["to"])
        repository = parts.path.strip("/")
        if parts.scheme not in ("http", "https") or not parts.netloc or not repository:
            raise CommandError("--to must be http(s)://host[:port]/repository")
        password = os.environ.get(options["password_env"], "") if options["password_env"] else ""
        credentials = None
        if options["username"]:
            user = options["username"]
            credentials = lambda: Credentials(user, password)  # noqa: E731
        return MirrorTarget(registry=parts.netloc, repository=repository, credentials=credentials,
                            scheme=parts.scheme, label=parts.netloc, parallel_blobs=max(1, options["parallel"]))
