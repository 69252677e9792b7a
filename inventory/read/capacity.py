"""The inventory as the matcher of reservation requests sees it (rules/capacity.py): every NIC
present on a node of the configured cluster, virtual links aside, with its node's labels and
whether it is free.

Free means what a single reservation accepts (services/reservations.py): the ownership verdict
is `free` (or `reserved` with no active reservation: a verdict that has not caught up with a
release yet) and no reservation is active on it.
"""

from __future__ import annotations

from inventory.choices import OwnershipState
from inventory.models import Reservation
from inventory.read import facts
from inventory.rules.capacity import Candidate

FREE_STATES = frozenset({OwnershipState.FREE.value, OwnershipState.RESERVED.value})
COLUMNS = (
    "pk",
    "node__name",
    "name",
    "node__labels",
    "speed_mbps",
    "driver",
    "vendor_id",
    "device_id",
    "sriov_total_vfs",
    "numa_node",
    "state",
    "reason",
    "holder",
)


def candidates() -> list[Candidate]:
    """The NICs a request may be granted, each with the facts it can be matched on."""
    rows = (
        facts.configured_interfaces()
        .filter(present=True)
        .exclude(state=OwnershipState.VIRTUAL)
        .values_list(*COLUMNS)
    )
    held = dict(
        Reservation.objects.filter(
            released_at__isnull=True, interface__in=facts.configured_interfaces()
        ).values_list("interface_id", "team__name")
    )
    result = []
    for row in rows:
        row = dict(zip(COLUMNS, row, strict=True))
        team = held.get(row["pk"])
        free = row["state"] in FREE_STATES and team is None
        if team is not None:
            why = f"reserved by team {team}"
        elif not free:
            label = OwnershipState(row["state"]).label if row["state"] in OwnershipState else ""
            why = f"{label or row['state']}: {row['holder'] or row['reason'] or 'no reason given'}"
        else:
            why = ""
        labels = row["node__labels"]
        result.append(
            Candidate(
                id=row["pk"],
                node=row["node__name"],
                name=row["name"],
                labels=labels if isinstance(labels, dict) else {},
                speed_mbps=row["speed_mbps"],
                driver=row["driver"],
                vendor_id=row["vendor_id"],
                device_id=row["device_id"],
                sriov_total_vfs=row["sriov_total_vfs"],
                numa_node=row["numa_node"],
                free=free,
                not_free_reason=why,
            )
        )
    return result
