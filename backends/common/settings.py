"""Per-backend settings under one convention: `TRAIN_<BACKEND>_<NAME>`, where BACKEND is the backend's
name in capitals with '-' as '_' (TRAIN_SAGEMAKER_POLL_SECONDS, TRAIN_VERTEX_AI_POLL_SECONDS,
TRAIN_AZURE_ML_READ_TIMEOUT_SECONDS).

A value is looked up, for the conventional name and then each older alias: as a Django setting (one
settings.py defines, or a test overrides), then in the environment. So a new backend needs no line in
settings.py, and a name already documented keeps working as an alias. Every value is parsed and
checked the same way wherever it came from; a bad one raises ImproperlyConfigured naming the variable
(`manage.py check` reports it, see backends/checks.py).
"""

from __future__ import annotations

import os
from collections.abc import Callable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

DEFAULT_POLL_SECONDS = (30, 300)
DEFAULT_READ_TIMEOUT_SECONDS = 30


def setting_name(backend: str, name: str) -> str:
    return f"TRAIN_{backend.upper().replace('-', '_')}_{name}"


def backend_setting(backend: str, name: str, *, default, parse: Callable, aliases: tuple[str, ...] = ()):
    """The parsed value of TRAIN_<BACKEND>_<NAME> (or the first alias set), else `default`."""
    for key in (setting_name(backend, name), *aliases):
        value = getattr(settings, key, None)
        if value is None:
            value = os.environ.get(key) or None
        if value is not None:
            try:
                return parse(value)
            except (TypeError, ValueError) as exc:
                raise ImproperlyConfigured(f"{key}: {exc}") from None
    return default


def parse_bounds(value) -> tuple[int, int]:
    """"low,high" (or a pair) of whole seconds, 1 <= low <= high."""
    parts = [part.strip() for part in value.split(",")] if isinstance(value, str) else list(value)
    if len(parts) != 2:
        raise ValueError(f"two whole numbers of seconds, low,high (such as 30,300), not {value!r}")
    low, high = (int(part) for part in parts)
    if not 1 <= low <= high:
        raise ValueError(f"needs 1 <= low <= high, not {low},{high}")
    return low, high


def parse_positive(value) -> int:
    seconds = int(value)
    if seconds < 1:
        raise ValueError(f"a whole number of seconds of at least 1, not {value!r}")
    return seconds


def poll_bounds(backend: str, *, default: tuple[int, int] = DEFAULT_POLL_SECONDS,
                aliases: tuple[str, ...] = ()) -> tuple[int, int]:
    """A backend's poll interval bounds (TRAIN_<BACKEND>_POLL_SECONDS): how soon a job is polled
    again after a change, and how rarely at most once it has been quiet for long."""
    return backend_setting(backend, "POLL_SECONDS", default=default, parse=parse_bounds, aliases=aliases)


def read_timeout_seconds(backend: str, *, default: int = DEFAULT_READ_TIMEOUT_SECONDS,
                         aliases: tuple[str, ...] = ()) -> int:
    """How long one call of a backend's cloud API may wait for its answer
    (TRAIN_<BACKEND>_READ_TIMEOUT_SECONDS)."""
    return backend_setting(backend, "READ_TIMEOUT_SECONDS", default=default, parse=parse_positive, aliases=aliases)
