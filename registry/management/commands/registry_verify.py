from django.core.management.base import BaseCommand

from registry.verify import blobs_verify


class Command(BaseCommand):
    help = ("Re-hash every stored registry blob and quarantine those whose bytes do not match their digest: "
            "they stop being served, and the next push of that digest stores correct bytes again.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="Report damaged blobs; change nothing.")

    def handle(self, *args, dry_run, **options):
        action = "damaged" if dry_run else "quarantined"

        def report(blob, why):
            self.stdout.write(f"{action} {blob.digest}: {why}")

        checked, damaged = blobs_verify(dry_run=dry_run, report=report)
        self.stdout.write(f"checked {checked} blobs, {damaged} {action}")
