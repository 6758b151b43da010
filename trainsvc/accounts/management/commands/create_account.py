from django.core.management.base import BaseCommand, CommandError

from trainsvc.accounts.services import AccountError, account_create


class Command(BaseCommand):
    help = "Create an account (idempotent). The id is a lowercase slug, e.g. acme-research."

    def add_arguments(self, parser):
        parser.add_argument("account_id")
        parser.add_argument("--name", default="")

    def handle(self, *args, account_id, name, **options):
        try:
            account = account_create(account_id=account_id, name=name)
        except AccountError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(account.id)
