"""Emptying the test database after a transactional test (`django_db(transaction=True)`) in
milliseconds instead of Django's half second.

Django ends each such test with `manage.py flush`: one TRUNCATE of every table, which on PostgreSQL
gives each table and index a new file and waits for those to reach the disk, then the post_migrate
signal. Here the same end state is reached with one DELETE per table in a single transaction (Django
declares its foreign keys DEFERRABLE INITIALLY DEFERRED, so the order does not matter), then the same
signal. Content types and permissions are the exception: they are kept as migrate wrote them instead of
being deleted and written again, so the signal's receivers for them find nothing missing; any other
receiver (an app that seeds rows after migrate) fills its tables again as after a flush.

A test that asks for more than an empty database (`serialized_rollback`, `available_apps`) gets
Django's own flush."""

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.core.management.sql import emit_post_migrate_signal
from django.db import connections, transaction
from django.test import TransactionTestCase

# Filled by migrate's post_migrate receivers (contenttypes, auth), which add only what is missing.
KEPT_TABLES = {ContentType._meta.db_table, Permission._meta.db_table}


def database_empty(alias: str) -> None:
    connection = connections[alias]
    tables = connection.introspection.django_table_names(only_existing=True, include_views=False)
    # Table names come from the schema (introspection), quoted: no input reaches this SQL.
    statements = [f"DELETE FROM {connection.ops.quote_name(table)}" for table in sorted(tables)  # noqa: S608
                  if table not in KEPT_TABLES]
    if not statements:
        return
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        if connection.vendor == "sqlite":  # one statement per execute()
            for statement in statements:
                cursor.execute(statement)
        else:
            cursor.execute(";".join(statements))
    emit_post_migrate_signal(0, False, alias)


def _fixture_teardown(self):
    if self.serialized_rollback or self.available_apps is not None:
        return _django_fixture_teardown(self)
    for alias in self._databases_names(include_mirrors=False):
        database_empty(alias)


_django_fixture_teardown = TransactionTestCase._fixture_teardown


def install() -> None:
    """Make every transactional test end with `database_empty` (django.test.TestCase, which rolls
    back instead, is unaffected)."""
    TransactionTestCase._fixture_teardown = _fixture_teardown
