"""The upgrade that brings the cross-check pins the uplinks the stored facts already show, so
that the first snapshot after it that hides one meets a pin (a warm sweep re-judges only rows
whose facts changed)."""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

BEFORE = [("inventory", "0009_interface_sort_indexes")]
AFTER = [("inventory", "0010_crosscheck_node_addresses")]


def migrate(target):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(target)
    return executor.loader.project_state(target).apps


@pytest.fixture
def back_to_latest():
    """The later tests need every migration applied again, not only this one's."""
    yield
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("back_to_latest")
def test_the_upgrade_pins_the_uplinks_the_stored_facts_show():
    apps = migrate(BEFORE)
    Cluster = apps.get_model("inventory", "Cluster")
    Node = apps.get_model("inventory", "Node")
    Interface = apps.get_model("inventory", "Interface")
    node = Node.objects.create(
        cluster=Cluster.objects.create(name="up"), name="n1", internal_ips=["10.0.0.5", "bogus"]
    )
    v4 = {"family": 4, "address": "10.0.0.5", "prefixlen": 24, "scope": "universe"}
    other = {"family": 4, "address": "192.0.2.1", "prefixlen": 24, "scope": "universe"}

    def nic(name, **facts):
        return Interface.objects.create(
            node=node, node_name="n1", name=name, identity=name, identity_kind="name", **facts
        )

    nic("eth0", addresses=[v4], default_route_v4=True)
    nic("eth1", default_route_v6=True)
    nic("eth2", addresses=[other])
    nic("eth3", addresses=[v4], present=False)  # vanished: its facts are not the host's now
    nic("eth4")

    apps = migrate(AFTER)
    pinned = dict(apps.get_model("inventory", "Interface").objects.values_list("name", "pinned"))
    assert pinned == {
        "eth0": ["10.0.0.5", "default-route"],
        "eth1": ["default-route"],
        "eth2": [],
        "eth3": [],
        "eth4": [],
    }
