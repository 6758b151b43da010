"""Per-account backend configuration: reading it for a job and changing it (API and admin).

New jobs take the account's current configuration (`backend_for_account`) and record it;
a job once created is driven with the snapshot it recorded (`backend_for_snapshot`)."""

from django.db import transaction
from django.utils import timezone

from backends.base import Backend, SpecError
from backends.models import BackendConfig
from backends.registry import backend_class, enabled_backend_names, get_backend


def backend_require_enabled(name: str, *, field: str = "backend") -> type[Backend]:
    enabled = enabled_backend_names()
    if name not in enabled:
        raise SpecError({field: f"Unknown or disabled backend {name!r}; this deployment offers: {', '.join(enabled)}."})
    return backend_class(name)


def backend_for_account(*, account, name: str, field: str = "backend") -> Backend:
    """The backend instance configured for `account`. Raises SpecError if it is disabled or, for a
    backend that needs configuration, not configured by the account yet."""
    cls = backend_require_enabled(name, field=field)
    row = BackendConfig.objects.filter(account=account, backend=name).first()
    if row is None and cls.requires_config:
        raise SpecError({field: f"The {name} backend is not configured for this account; an account admin "
                                f"sets it up with PUT /v1/backends/{name}."})
    return backend_for_snapshot(account_id=account.pk, name=name, config=row.config if row else {})


def backend_for_snapshot(*, account_id: str, name: str, config: dict, field: str = "backend") -> Backend:
    """The backend instance for a job pinned to `config` (the configuration it was created with),
    whatever the account has configured since. Raises SpecError if the backend was disabled."""
    backend_require_enabled(name, field=field)
    backend = get_backend(name, dict(config))
    backend.account_id = account_id
    return backend


@transaction.atomic
def backend_configure(*, account, name: str, config, user=None) -> BackendConfig:
    cls = backend_require_enabled(name, field="name")
    if not isinstance(config, dict):
        raise SpecError({"config": "Must be a JSON object."})
    existing = BackendConfig.objects.select_for_update().filter(account=account, backend=name).first()
    cleaned = cls.validate_config(config, previous=existing.config if existing else {})
    cls.verify_config(cleaned, account_id=account.pk)
    row, _ = BackendConfig.objects.update_or_create(
        account=account, backend=name,
        defaults={"config": cleaned, "updated_at": timezone.now(), "updated_by": user},
    )
    return row

