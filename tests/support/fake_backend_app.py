"""Registers the scriptable fake backend in a worker process the tests start (qcluster), where no
fixture can: tests/settings.py installs this app when TRAIN_TEST_FAKE_BACKEND=1. The fake stands in
for a cloud only; everything else in the worker is the shipped code."""

from django.apps import AppConfig


class FakeBackendApp(AppConfig):
    name = "tests.support"
    label = "test_fake_backend"

    def ready(self):
        from backends import registry

        registry.BACKEND_CLASSES.setdefault("fake", "tests.support.fake_backend.FakeBackend")
