from django.core.management.base import BaseCommand

from registry.gc import gc_run


class Command(BaseCommand):
    help = ("Reclaim registry storage now: idle and expired uploads, upload bytes without a session, links and "
            "blobs no manifest references (past TRAIN_REGISTRY_GC_GRACE_SECONDS), blob files without a row. "
            "Safe while the registry serves pushes.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="only print what would be removed (manifests stored without their "
                                 "references still get them recorded)")

    def handle(self, *args, dry_run=False, **options):
        for line in gc_run(dry_run=dry_run).lines():
            self.stdout.write(line)
