"""The live count and the requests count in the database (read/capacity.match): for every request
the answer must be the pure matcher's over every NIC (rules/capacity.match over
read/capacity.candidates), step counts, picks, explanation and closest alike. Checked over an
inventory whose facts take every shape the filters distinguish (unknown speed, ids with and
without 0x in either case, VFs without a name, labels with dotted keys, NICs reserved, in use,
virtual, gone, on an unlisted node or on another cluster), on SQLite and on PostgreSQL."""

from __future__ import annotations

import random

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.choices import IdentityKind, OwnershipState
from inventory.models import Interface, Reservation
from inventory.read import capacity as inventory
from inventory.rules import capacity as rules
from inventory.rules.capacity import Constraints
from tests.api.builders import in_days, make_cluster, make_node, make_team, make_user

LABELS = [
    {"rack": "r12", "topology.kubernetes.io/zone": "z1", "gpu": "a100"},
    {"rack": "r12", "gpu": "h100"},
    {"rack": "r7", "tier": "slow", "topology.kubernetes.io/zone": "z2"},
    {"rack": "r7", "spot": ""},
    {},
]
DRIVERS = ["mlx5_core", "ice", "ixgbe", "", "vfio-pci"]
VENDORS = ["0x15b3", "0x8086", "15B3", "0X8086", ""]
DEVICES = ["0x1017", "0x159b", "1017", ""]
STATES = [OwnershipState.FREE] * 5 + [
    OwnershipState.RESERVED,
    OwnershipState.POD,
    OwnershipState.SYSTEM,
    OwnershipState.UNKNOWN,
    OwnershipState.VIRTUAL,
]


@pytest.fixture
def inventory_rows(db):
    rng = random.Random(21)
    team = make_team("ml")
    user = make_user("mia", team)
    nodes = [
        make_node(f"n-{i:02d}" if i % 3 else f"N.{i}", labels=LABELS[i % len(LABELS)])
        for i in range(14)
    ]
    nodes.append(make_node("gone", labels=LABELS[0], in_cluster=False))
    nodes.append(make_node("elsewhere", labels=LABELS[0], cluster=make_cluster("other")))
    rows = []
    for node in nodes:
        for port in range(rng.randint(0, 9)):
            vf = rng.random() < 0.2
            pci = f"0000:{node.pk:02x}:{port:02x}.{int(vf)}"
            rows.append(
                Interface(
                    node=node,
                    node_name=node.name,
                    identity=pci,
                    identity_kind=IdentityKind.PCI,
                    name="" if vf and rng.random() < 0.5 else f"ens{port}",
                    kind="physical",
                    pci_address=pci,
                    driver=rng.choice(DRIVERS),
                    vendor_id=rng.choice(VENDORS),
                    device_id=rng.choice(DEVICES),
                    speed_mbps=rng.choice([None, -1, 0, 10000, 25000, 25000, 100000]),
                    numa_node=rng.choice([None, 0, 1]),
                    sriov_total_vfs=None if vf else rng.choice([None, 0, 8]),
                    pf_pci_address=f"0000:{node.pk:02x}:00.0" if vf else "",
                    pf="ens0" if vf and rng.random() < 0.5 else "",
                    vf_index=port if vf else None,
                    present=rng.random() > 0.05,
                    state=rng.choice(STATES),
                    holder="pod ns/p" if rng.random() < 0.3 else "",
                )
            )
    Interface.objects.bulk_create(rows)
    free = list(Interface.objects.filter(state=OwnershipState.FREE).order_by("pk"))
    for interface in rng.sample(free, 6):
        Reservation.objects.create(
            interface=interface, team=team, created_by=user, purpose="x", expires_at=in_days(1)
        )
    return rng


def random_constraints(rng: random.Random) -> Constraints:
    count = rng.choice([1, 1, 2, 3, 5, 9])
    placement = rng.choice(["any", "any", "one_node", "one_numa", "spread"])
    return Constraints(
        count=count,
        nodes=tuple(rng.sample(["n-01", "n-02", "N.3", "n-04", "gone", "n-13"], 3))
        if rng.random() < 0.2
        else (),
        label_selector=rng.choice(
            [
                "",
                "",
                "rack=r12",
                "rack!=r12",
                "gpu in (a100,h100)",
                "gpu notin (a100)",
                "topology.kubernetes.io/zone",
                "!spot",
                "spot,rack=r7",
                "tier==slow",
                "rack in (r7),!gpu",
            ]
        ),
        min_speed_mbps=rng.choice([None, None, 1, 10000, 25000, 40000]),
        driver=rng.choice(["", "", "", "mlx5_core", "ice"]),
        vendor_id=rng.choice(["", "", "15b3", "0x8086", "0x15B3"]),
        device_id=rng.choice(["", "", "", "1017", "0x159B"]),
        sriov=rng.choice([None, None, True, False]),
        vf=rng.choice([None, None, True, False]),
        numa_node=rng.choice([None, None, 0, 1, 3]),
        placement=placement,
        spread_nodes=rng.randint(1, count) if placement == "spread" else None,
    )


def test_the_database_count_answers_as_the_pure_matcher_over_every_nic(inventory_rows):
    rng = inventory_rows
    assert len(inventory.candidates()) > 40
    outcomes, placed = set(), set()
    for _ in range(150):
        constraints = random_constraints(rng)
        assert not rules.constraint_problems(constraints)
        expected = rules.match(inventory.candidates(), constraints)
        got = inventory.match(constraints)
        assert got == expected, constraints
        outcomes.add(expected.failed_step.field if expected.failed_step else "ok")
        if expected.ok:
            placed.add(constraints.placement)
    # The draws reached every way a request ends: met, emptied by a filter, or not placeable.
    assert {"ok", "free", "count", "placement", "min_speed_mbps"} <= outcomes
    assert placed == {"any", "one_node", "one_numa", "spread"}


def test_a_fleet_is_counted_in_a_few_queries_whatever_its_size(inventory_rows):
    with CaptureQueriesContext(connection) as met:
        assert inventory.match(Constraints(count=2)).ok
    with CaptureQueriesContext(connection) as emptied:
        refused = inventory.match(Constraints(count=1, min_speed_mbps=10**6))
    assert refused.failed_step.field == "min_speed_mbps" and refused.closest
    # The counts (1), the chosen nodes' NICs, their labels and reservations (3).
    assert len(met) == 4
    assert len(emptied) == 5  # the counts, the closest ids, then their rows as above


def test_a_count_the_read_contradicts_is_made_again(inventory_rows, monkeypatch):
    """Another request took a counted NIC before the chosen node's NICs were read: the read
    comes short and the count is made again, never a grant of fewer NICs than asked."""
    real, reads = inventory._read, []

    def short_once(queryset):
        rows = real(queryset)
        reads.append(len(rows))
        return rows[:-1] if len(reads) == 1 else rows

    monkeypatch.setattr(inventory, "_read", short_once)
    constraints = Constraints(count=2, placement="one_node")
    found = inventory.match(constraints)
    assert len(reads) == 2 and found.ok and len(found.picked) == 2
    assert found == rules.match(inventory.candidates(), constraints)
