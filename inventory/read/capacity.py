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
    "node_id",
    "node_name",
    "name",
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
    """The NICs a request may be granted, each with the facts it can be matched on. The node's
    labels are read once per node (one dict shared by its NICs), not once per NIC."""
    labels = {
        pk: value if isinstance(value, dict) else {}
        for pk, value in facts.configured_nodes().values_list("pk", "labels")
    }
    held = dict(
        Reservation.objects.filter(
            released_at__isnull=True, interface__in=facts.configured_interfaces()
        ).values_list("interface_id", "team__name")
    )
    rows = (
        facts.configured_interfaces()
        .filter(present=True)
        .exclude(state=OwnershipState.VIRTUAL)
        .values_list(*COLUMNS)
    )
    result = []
    for (
        pk,
        node_id,
        node,
        name,
        speed,
        driver,
        vendor,
        device,
        vfs,
        numa,
        state,
        reason,
        holder,
    ) in rows:
        team = held.get(pk)
        free = state in FREE_STATES and team is None
        if team is not None:
            why = f"reserved by team {team}"
        elif not free:
            label = OwnershipState(state).label if state in OwnershipState else state
            why = f"{label}: {holder or reason or 'no reason given'}"
        else:
            why = ""
        result.append(
            Candidate(
                id=pk,
                node=node,
                name=name,
                labels=labels.get(node_id, {}),
                speed_mbps=speed,
                driver=driver,
                vendor_id=vendor,
                device_id=device,
                sriov_total_vfs=vfs,
                numa_node=numa,
                free=free,
                not_free_reason=why,
            )
        )
    return result
