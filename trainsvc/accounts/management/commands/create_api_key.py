from django.core.management.base import BaseCommand, CommandError

from trainsvc.accounts.models import Account, Membership, Role
from trainsvc.accounts.services import AccountError, api_key_create


class Command(BaseCommand):
    help = "Issue an API key for an account. The last line of output is the key and nothing else."

    def add_arguments(self, parser):
        parser.add_argument("account_id")
        parser.add_argument(
            "--role", default=None, choices=Role.values,
            help="Default: admin for a new membership; an existing member named with --user keeps their role.",
        )
        parser.add_argument("--user", default=None, help="Existing username; default: the account's service user.")
        parser.add_argument("--name", default="", help="A label for the key.")

    def handle(self, *args, account_id, role, user, name, **options):
        account = Account.objects.filter(id=account_id).first()
        if account is None:
            raise CommandError(f"No account {account_id!r}; create it with `manage.py create_account {account_id}`.")
        try:
            key, plaintext = api_key_create(account=account, role=role, username=user, name=name)
        except AccountError as exc:
            raise CommandError(str(exc)) from exc
        role = Membership.objects.get(user=key.user, account=account).role
        self.stderr.write(f"Key {key.key_id} for {key.user.username} ({role}) in {account.id}; it is shown once:")
        self.stdout.write(plaintext)
