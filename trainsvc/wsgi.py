import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "trainsvc.settings")
application = get_wsgi_application()

from backends.local_engine import log_local_engine  # noqa: E402 - needs the settings loaded above

log_local_engine()
