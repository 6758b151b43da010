"""Used by `make run`: make sure a `demo` account, an API key and an admin login exist, and print how
to use them. The demo key and password are kept in TRAIN_DATA_DIR (mode 600) so later runs can print
them again; this command refuses to run in production."""

import os
import secrets
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from backends.local_engine import local_engine
from trainsvc.accounts.models import ApiKey
from trainsvc.accounts.services import account_create, api_key_create

DEMO_ACCOUNT = "demo"


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)


class Command(BaseCommand):
    help = "Create the demo account, API key and admin login for local use, and print them."

    def handle(self, *args, **options):
        if settings.PRODUCTION:
            raise CommandError("demo_setup is for development only.")
        data = Path(settings.TRAIN_DATA_DIR)
        account = account_create(account_id=DEMO_ACCOUNT, name="Demo")
        key_file, password_file = data / "demo-api-key", data / "demo-admin-password"
        key = key_file.read_text().strip() if key_file.exists() else ""
        if not key or ApiKey.objects.authenticate(key) is None:
            _, key = api_key_create(account=account, role="admin", name="demo key (make run)")
            _write_private(key_file, key)
        User = get_user_model()
        if not password_file.exists() or not User.objects.filter(username="admin").exists():
            password = secrets.token_urlsafe(12)
            admin = User.objects.filter(username="admin").first() or User(username="admin")
            admin.is_staff = admin.is_superuser = True
            admin.set_password(password)
            admin.save()
            _write_private(password_file, password)
        password = password_file.read_text().strip()
        (data / "storage").mkdir(exist_ok=True)
        base = f"http://127.0.0.1:{settings.PORT}"
        self.stdout.write(f"""
Train is starting on {base}

  API key (account "{DEMO_ACCOUNT}"):  {key}
  Admin:  {base}/admin/   user "admin", password "{password}"
  API docs:  {base}/v1/docs
  Registry:  docker login {settings.TRAIN_REGISTRY_HOST} -u {DEMO_ACCOUNT}   (password: the API key)
  {local_engine().describe() if settings.TRAIN_LOCAL_BACKEND else "local backend: off"}

Try it:
  export TRAIN_KEY={key}
  curl -s {base}/v1/jobs -H "x-api-key: $TRAIN_KEY" -H "x-selected-account-id: {DEMO_ACCOUNT}" \\
       -H "content-type: application/json" \\
       -d '{{"name": "hello", "backend": "local", "image": "python:3.11",
            "command": ["sh", "-c", "echo hello; sleep 5; echo done"]}}'
  curl -s {base}/v1/jobs -H "x-api-key: $TRAIN_KEY" -H "x-selected-account-id: {DEMO_ACCOUNT}"
""")
