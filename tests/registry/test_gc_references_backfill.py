"""The migration that adds ManifestReference records what manifests stored before it name, so the
first collection after an upgrade keeps their blobs."""

import json

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor


def executor() -> MigrationExecutor:
    found = MigrationExecutor(connection)
    found.loader.build_graph()
    return found


def migrate(targets):
    runner = executor()
    runner.migrate(targets)
    return runner.loader.project_state(targets).apps


@pytest.fixture
def around_backfill():
    """(the migration before the backfill, the backfill), found by name; afterwards, the latest schema."""
    graph = executor().loader.graph
    backfill = next(key for key in graph.nodes if key[0] == "registry" and key[1].endswith("_gc_references"))
    before = next(iter(graph.node_map[backfill].parents)).key
    yield [before], [backfill]
    migrate(executor().loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
def test_references_of_existing_manifests_are_backfilled(acme, around_backfill):
    before, after = around_backfill
    old = migrate(before)
    repository = old.get_model("registry", "Repository").objects.create(name="acme/app", account_id="acme")
    image = {"schemaVersion": 2, "config": {"digest": "sha256:" + "c" * 64, "size": 2},
             "layers": [{"digest": "sha256:" + "1" * 64, "size": 3}, {"digest": "sha256:" + "2" * 64, "size": 4}]}
    index = {"schemaVersion": 2, "manifests": [{"digest": "sha256:" + "a" * 64, "size": 5}]}
    Manifest = old.get_model("registry", "Manifest")
    for letter, document in (("e", image), ("d", index), ("b", None)):
        Manifest.objects.create(repository=repository, digest="sha256:" + letter * 64, media_type="x",
                                size=1, content=b"{not json" if document is None else json.dumps(document).encode())
    new = migrate(after)
    rows = set(new.get_model("registry", "ManifestReference").objects.values_list("manifest__digest", "digest", "kind"))
    assert rows == {
        ("sha256:" + "e" * 64, "sha256:" + "c" * 64, "blob"),
        ("sha256:" + "e" * 64, "sha256:" + "1" * 64, "blob"),
        ("sha256:" + "e" * 64, "sha256:" + "2" * 64, "blob"),
        ("sha256:" + "d" * 64, "sha256:" + "a" * 64, "manifest"),
    }
