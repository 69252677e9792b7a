"""Upgrades and rollbacks: every inventory migration can be unapplied and applied again."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader


def inventory_tables() -> set[str]:
    return {
        name for name in connection.introspection.table_names() if name.startswith("inventory_")
    }


@pytest.mark.django_db(transaction=True)
def test_inventory_migrates_to_zero_and_back():
    before = inventory_tables()
    assert "inventory_interface" in before
    call_command("migrate", "inventory", "zero", verbosity=0, interactive=False)
    assert inventory_tables() == set()
    call_command("migrate", "inventory", verbosity=0, interactive=False)
    assert inventory_tables() == before
    loader = MigrationLoader(connection)
    unapplied = set(loader.graph.leaf_nodes()) - set(loader.applied_migrations)
    assert not unapplied
