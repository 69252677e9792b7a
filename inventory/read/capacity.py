"""The inventory as the matcher of reservation requests sees it (rules/capacity.py): every NIC
present on a node of one cluster (the default one unless a request names another), virtual
links aside, with its node's labels and
whether it is free.

Free means what a single reservation accepts (services/reservations.py): the ownership verdict
is `free` (or `reserved` with no active reservation: a verdict that has not caught up with a
release yet) and no reservation is active on it.

`match` counts in the database and reads only the rows it needs: every filter of
rules/capacity.filters has its SQL twin here (`conditions`, in the same order, with the same
meaning), so one grouped query gives the count after each filter and the matches per node (per node
and NUMA node for `one_numa`); the pure matcher then places the count (rules/capacity.plan) and
reads the NICs of the chosen nodes only, or, when a filter emptied the set, the few NICs ranked
closest by the same key as rules/capacity._closest. `candidates` reads every NIC (the pure matcher's
whole input).
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Value, When
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce, Collate, Lower, Trim
from django.db.models.lookups import Exact, In

from inventory.choices import OwnershipState
from inventory.models import Cluster, Interface, Node, Reservation
from inventory.read import facts
from inventory.rules import capacity as rules
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
    "pci_address",
    "pf",
    "pf_pci_address",
    "vf_index",
)


def _nodes(cluster: Cluster | None) -> QuerySet[Node]:
    if cluster is None:
        return facts.configured_nodes()
    return Node.objects.filter(cluster=cluster, in_cluster=True)


def _interfaces(cluster: Cluster | None) -> QuerySet[Interface]:
    if cluster is None:
        return facts.configured_interfaces()
    return Interface.objects.filter(node__cluster=cluster, node__in_cluster=True)


def considered(cluster: Cluster | None = None) -> QuerySet[Interface]:
    """The NICs a request may be granted or told about: present on a listed node of `cluster`
    (None: the configured, default cluster), virtual links aside."""
    return _interfaces(cluster).filter(present=True).exclude(state=OwnershipState.VIRTUAL)


def candidates(cluster: Cluster | None = None) -> list[Candidate]:
    """The NICs of `cluster` a request may be granted, each with the facts it can be matched on.
    The node's labels are read once per node (one dict shared by its NICs), not once per NIC."""
    labels = {
        pk: value if isinstance(value, dict) else {}
        for pk, value in _nodes(cluster).values_list("pk", "labels")
    }
    held = dict(
        Reservation.objects.filter(
            released_at__isnull=True, interface__in=_interfaces(cluster)
        ).values_list("interface_id", "team__name")
    )
    return _built(considered(cluster).values_list(*COLUMNS), labels, held)


MOVED_RETRIES = 5


def match(constraints: rules.Constraints, cluster: Cluster | None = None) -> rules.Match:
    """rules.match over `candidates(cluster)`, the same answer, counted in the database (see the
    module docstring): one grouped query, then the rows of the chosen nodes or the closest.
    Those are separate statements: when another request took NICs of the chosen nodes in
    between, the count is made again (after MOVED_RETRIES, the pure matcher over every NIC)."""
    for _attempt in range(MOVED_RETRIES):
        try:
            return _counted_match(constraints, cluster)
        except rules.Moved:
            continue
    return rules.match(candidates(cluster), constraints)


def _counted_match(constraints: rules.Constraints, cluster: Cluster | None) -> rules.Match:
    conds = conditions(constraints)
    passed = [functools.reduce(operator.and_, conds[: k + 1]) for k in range(len(conds))]
    # How many filters each NIC passes before its first failure, evaluated once per row.
    reached: Any = Value(len(conds))
    for k in reversed(range(len(conds))):
        reached = Case(When(conds[k], then=reached), default=Value(k), output_field=IntegerField())
    by_numa = constraints.placement == "one_numa"
    grouped = ("node_name", "numa_node") if by_numa else ("node_name",)
    rows = [
        ((row[0], row[1]) if by_numa else row[0], *row[-2:])
        for row in considered(cluster)
        .annotate(reached=reached)
        .order_by()
        .values_list(*grouped, "reached")
        .annotate(n=Count("pk"))
    ]
    totals = [sum(n for _group, _reached, n in rows)]
    for k in range(1, len(conds) + 1):
        totals.append(sum(n for _group, passes, n in rows if passes >= k))
        if not totals[-1]:
            break
    per_node = {group: n for group, passes, n in rows if passes == len(conds)}

    def load(nodes: Sequence[str]) -> list[Candidate]:
        return _read(considered(cluster).filter(passed[-1], node_name__in=list(nodes)))

    def near(steps: int) -> list[Candidate]:
        return _read(considered(cluster).filter(pk__in=_closest_ids(conds, steps, cluster)))

    return rules.counted(constraints, totals, per_node, load=load, near=near)


# --- the filters in SQL -------------------------------------------------------------------------


def conditions(constraints: rules.Constraints) -> list[Q]:
    """One condition per filter of rules/capacity.filters, in its order and with its meaning
    (a NIC passes the condition exactly when the filter says "" of it)."""
    c = constraints
    result: list[Q] = []
    if c.nodes:
        result.append(Q(node_name__in=list(c.nodes)))
    if c.label_selector:
        requirements, _ = rules.parse_label_selector(c.label_selector)
        result.append(functools.reduce(operator.and_, map(_label_condition, requirements)))
    if c.min_speed_mbps is not None:
        result.append(Q(speed_mbps__gte=c.min_speed_mbps))  # NULL (unknown) never passes
    if c.driver:
        result.append(Q(driver=c.driver))
    if c.vendor_id:
        result.append(_pci_condition("vendor_id", c.vendor_id))
    if c.device_id:
        result.append(_pci_condition("device_id", c.device_id))
    if c.sriov is not None:
        capable = Q(sriov_total_vfs__isnull=False) & ~Q(sriov_total_vfs=0)
        result.append(capable if c.sriov else ~capable)
    if c.vf is not None:
        is_vf = ~Q(pf_pci_address="")
        result.append(is_vf if c.vf else ~is_vf)
    if c.numa_node is not None:
        result.append(Q(numa_node=c.numa_node))
    # NOT IN: one hash of the active reservations per query, not one probe per NIC.
    active = Reservation.objects.filter(released_at__isnull=True).values("interface_id")
    result.append(Q(state__in=sorted(FREE_STATES)) & ~Q(pk__in=active))
    return result


def _label_condition(requirement: rules.Requirement) -> Q:
    """rules.Requirement.matches on the node's labels (Kubernetes label values are strings)."""
    key = requirement.key
    has = Q(node__labels__has_key=key)
    value = KeyTextTransform(key, "node__labels")
    if requirement.operator == "=":
        return has & Q(Exact(value, requirement.values[0]))
    if requirement.operator == "!=":
        return ~has | (has & ~Q(Exact(value, requirement.values[0])))
    if requirement.operator == "in":
        return has & Q(In(value, list(requirement.values)))
    if requirement.operator == "notin":
        return ~has | (has & ~Q(In(value, list(requirement.values))))
    if requirement.operator == "exists":
        return has
    return ~has


def _pci_condition(column: str, wanted: str) -> Q:
    """rules.normalize_pci_id(column) == rules.normalize_pci_id(wanted): the stored id with or
    without 0x, in any case."""
    normal = rules.normalize_pci_id(wanted)
    return Q(In(Lower(Trim(column)), [normal, normal.removeprefix("0x")]))


def _closest_ids(conds: list[Q], steps: int, cluster: Cluster | None) -> list[int]:
    """The ids of the NICs rules/capacity._closest ranks first when the `steps`-th filter
    emptied the set: by failed filters, then whether it passed the filters before that one,
    then speed (fastest first), node name, name and id, compared as Python compares them."""
    one = IntegerField()
    fails = functools.reduce(
        operator.add,
        (Case(When(q, then=Value(0)), default=Value(1), output_field=one) for q in conds),
    )
    before = conds[: steps - 1]
    reached = (
        Case(
            When(functools.reduce(operator.and_, before), then=Value(0)),
            default=Value(1),
            output_field=IntegerField(),
        )
        if before
        else Value(0, output_field=IntegerField())
    )
    binary = "C" if connection.vendor == "postgresql" else "BINARY"  # code point order
    ranked = (
        considered(cluster)
        .annotate(_fails=fails, _unreached=reached, _speed=Coalesce(F("speed_mbps"), Value(0)))
        .order_by(
            "_fails",
            "_unreached",
            F("_speed").desc(),
            Collate(F("node_name"), binary),
            Collate(F("name"), binary),
            "pk",
        )
        .values_list("pk", flat=True)
    )
    return list(ranked[: rules.CLOSEST_MAX])


# --- rows into candidates -----------------------------------------------------------------------


def _read(queryset: QuerySet[Interface]) -> list[Candidate]:
    """A few rows as candidates, with their nodes' labels and active reservations."""
    rows = list(queryset.order_by().values_list(*COLUMNS))
    if not rows:
        return []
    labels = {
        pk: value if isinstance(value, dict) else {}
        for pk, value in Node.objects.filter(pk__in={row[1] for row in rows}).values_list(
            "pk", "labels"
        )
    }
    held = dict(
        Reservation.objects.filter(
            released_at__isnull=True, interface_id__in=[row[0] for row in rows]
        ).values_list("interface_id", "team__name")
    )
    return _built(rows, labels, held)


def _built(
    rows: Iterable[tuple[Any, ...]], labels: dict[int, dict], held: dict[int, str]
) -> list[Candidate]:
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
        pci_address,
        pf,
        pf_pci_address,
        vf_index,
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
                pci_address=pci_address,
                pf=(pf or pf_pci_address) if pf_pci_address else "",
                vf_index=vf_index,
            )
        )
    return result
