"""Settings for bench/api.py: the service's own settings plus a bare endpoint to compare against."""

from trainsvc.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
