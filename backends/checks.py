"""System checks: every backend's own settings (backends/common/settings.py) parse, so a typo in
TRAIN_<BACKEND>_POLL_SECONDS stops `manage.py check` and the worker, not the first poll."""

from django.core import checks
from django.core.exceptions import ImproperlyConfigured

# The class properties through which a backend reads its settings (when it has them).
SETTING_PROPERTIES = ("poll_interval_bounds", "read_timeout_seconds")


@checks.register()
def backend_settings_parse(app_configs=None, **kwargs):
    from backends.registry import BACKEND_CLASSES, backend_class

    errors = []
    for name in BACKEND_CLASSES:
        cls = backend_class(name)
        for prop in SETTING_PROPERTIES:
            try:
                getattr(cls, prop, None)
            except ImproperlyConfigured as exc:
                errors.append(checks.Error(f"{name}: {exc}", id="backends.E001"))
    return errors
