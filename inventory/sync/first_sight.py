"""The first snapshot of many nodes at once: nodes the inventory has no interface of yet (a new
installation, new nodes joining) get their rows in bulk, many nodes per transaction.

A node's first snapshot is all inserts: no stored row to compare with, no reservation (they
point at interface rows), nothing to update. So the whole batch is judged in memory (the same
pure ownership rules, fed by read/facts.py from the values about to be stored) and written with
PostgreSQL's COPY: one COPY of the interfaces, one of their history entries, one pipelined
UPDATE of the node rows, instead of building, compiling and sending model instances node by
node (bench/ANALYSIS.md: "Cold sweep").

Concurrency: the batch locks its node rows (SELECT ... FOR UPDATE, as apply_snapshot does one
node's) and checks again that they have no interfaces; a node that got rows meanwhile (a hint's
poll won the race) is handed back and goes through apply_snapshot. Ids come from the table's
own sequence, taken before the COPY, so history rows can name their interfaces.

PostgreSQL only (COPY); elsewhere every snapshot goes through apply_snapshot.
"""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.db.models import Exists, OuterRef

from inventory.choices import HistoryKind, OwnershipState
from inventory.models import HistoryEntry, Interface, Node
from inventory.read import facts
from inventory.rules import ownership
from inventory.sync.contact import note_contact
from inventory.sync.lint import mark_lint_dirty
from inventory.sync.snapshot import facts_digest, node_snapshot_fields, snapshot_facts
from inventory.sync.stats import SyncStats
from inventory.sync.verdicts import (
    breach_message,
    findings_history,
    history_message,
    verdict_values,
)

# Nodes per transaction: big enough that per-transaction costs (commit, locks, round trips)
# vanish, small enough that a batch's memory and lock time stay small.
BATCH_NODES = 100


@dataclass(frozen=True, slots=True)
class FirstSnapshot:
    node: Node
    snapshot: dict[str, Any]
    etag: str


def bulk_supported() -> bool:
    return connection.vendor == "postgresql"


def with_known_flag(nodes: Any) -> Any:
    """Annotate a Node queryset with `known`: the inventory has interfaces of it already."""
    return nodes.annotate(known=Exists(Interface.objects.filter(node=OuterRef("pk"))))


def apply_first_snapshots(
    batch: list[FirstSnapshot], *, now: datetime, contacts: dict | None = None
) -> tuple[SyncStats, list[FirstSnapshot]]:
    """Store the first snapshot of each node of the batch. Returns the stats and the snapshots
    of nodes that turned out to have interfaces already (for apply_snapshot)."""
    stats = SyncStats()
    if not batch:
        return stats, []
    with transaction.atomic():
        locked = {
            node.pk: node
            for node in with_known_flag(
                Node.objects.select_for_update(of=("self",))
                .filter(pk__in=[item.node.pk for item in batch])
                .select_related("cluster")  # its reachability is a fact of every verdict
            )
        }
        new = {pk for pk, node in locked.items() if not node.known}
        first = [item for item in batch if item.node.pk in new]
        # Known by now (a hint's poll won the race): the caller applies them one by one. A node
        # deleted meanwhile is dropped with its snapshot.
        later = [item for item in batch if item.node.pk in locked and item.node.pk not in new]
        claims = facts.pod_claims_by_node(locked.values())
        interfaces: list[dict[str, Any]] = []
        history: list[dict[str, Any]] = []
        node_updates: list[tuple[Node, list[str]]] = []
        # Contradictions with the Kubernetes API are rare: their few entries go by INSERT.
        finding_entries: list[HistoryEntry] = []
        for item in first:
            node = locked[item.node.pk]
            fields = _node_fields(node, item, now, contacts)
            rows, findings = _judged_rows(node, item.snapshot, claims.get(node.pk, ()), now)
            if findings != node.findings:
                finding_entries += findings_history(node, node.findings or [], findings, now)
                node.findings = findings
                fields.append("findings")
            node_updates.append((node, fields))
            interfaces += rows
            for row in rows:
                history += _history_rows(node, row, now)
        ids = _take_ids(len(interfaces))
        for row, pk in zip(interfaces, ids, strict=True):
            row["id"] = pk
        pk_of = {(row["node_id"], row["identity"]): row["id"] for row in interfaces}
        for entry in history:
            entry["interface_id"] = pk_of[(entry["node_id"], entry.pop("identity"))]
        _copy(Interface, interfaces)
        _copy(HistoryEntry, history)
        HistoryEntry.objects.bulk_create(finding_entries)
        stats.node_rows += _update_nodes(node_updates)
        stats.created += len(interfaces)
        stats.history += len(history) + len(finding_entries)
        for cluster_id in {node.cluster_id for node, _ in node_updates}:
            mark_lint_dirty(cluster_id)
    return stats, later


def _node_fields(node: Node, item: FirstSnapshot, now: datetime, contacts: dict | None) -> list:
    fields = note_contact(node, now, contacts)
    return node_snapshot_fields(node, item.snapshot, etag=item.etag, now=now, fields=fields)


def _judged_rows(
    node: Node, snapshot: dict[str, Any], claims: Any, now: datetime
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The node's Interface rows as column values, each with its verdict, and the node's
    findings (where the snapshot contradicts the Kubernetes API)."""
    found = snapshot_facts(snapshot)
    links = [facts.link_facts_from_values(ident, row, present=True) for ident, row in found.items()]
    judged = ownership.judge_node(
        facts.node_facts(node, answered_at=now), links, claims=claims, reservations={}
    )
    rows = []
    # A verdict's `gone` is for stored rows of links that vanished: never a link on the host.
    for (ident, row), verdict in zip(found.items(), judged.verdicts, strict=True):
        state, reason, holder, orphan = verdict_values(verdict)
        rows.append(
            {
                **row,
                "node_id": node.pk,
                "node_name": node.name,
                "identity": ident,
                "facts_digest": facts_digest(row),
                "present": True,
                "first_seen_at": now,
                "last_seen_at": now,
                "state": state,
                "reason": reason,
                "holder": holder,
                "orphan": orphan,
                "breach": verdict.breach,
                "pinned": list(verdict.pinned),
                "state_changed_at": now,
            }
        )
    return rows, [finding.as_dict() for finding in judged.findings]


# What a row not judged yet holds (the model's defaults): a verdict that differs is a change.
_UNJUDGED = {"state": OwnershipState.UNKNOWN, "reason": "", "holder": "", "orphan": False}


def _history_rows(node: Node, row: dict[str, Any], now: datetime) -> list[dict[str, Any]]:
    """The history sync/verdicts.history_for writes for this row's first verdict: its change of
    state, and a breach if it starts as one (it cannot: a breach needs a reservation, and a
    reservation an interface row; written the same way all the same)."""
    label = row["name"] or row["identity"]
    entries = []
    common = {"at": now, "identity": row["identity"], "node_id": node.pk, "actor_id": None,
              "team_id": None}  # fmt: skip
    if row["breach"]:
        entries.append(
            {
                **common,
                "kind": HistoryKind.BREACH,
                "old_state": "",
                "new_state": "",
                "message": breach_message(label, row["breach"], ""),
                "data": {"breach": row["breach"], "old_breach": "", "holder": row["holder"]},
            }
        )
    unchanged = all(row[name] == value for name, value in _UNJUDGED.items())
    if not unchanged and (row["state"] != _UNJUDGED["state"] or row["holder"]):
        entries.append(
            {
                **common,
                "kind": HistoryKind.OWNERSHIP,
                "old_state": _UNJUDGED["state"],
                "new_state": row["state"],
                "message": history_message(label, _UNJUDGED["state"], row["state"], row["reason"]),
                "data": {"holder": row["holder"], "old_holder": ""},
            }
        )
    return entries


def _take_ids(count: int) -> list[int]:
    if not count:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Interface._meta.db_table, count],
        )
        return [pk for (pk,) in cursor.fetchall()]


def _copy(model: type, rows: list[dict[str, Any]]) -> None:
    """COPY the rows into the model's table; every concrete column is written (the model's
    default where a row has no value), JSON columns as JSON text."""
    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and "id" not in rows[0])]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    # Worked out once for the whole batch: each column's default, which columns hold JSON, and
    # one C-level getter of all the values of a row (a row's values in one call, not a Python
    # step per column: that step was most of the CPU a first sight spent on COPY).
    defaults = {f.attname: f.get_default() if f.has_default() else None for f in fields}
    values_of = operator.itemgetter(*defaults)
    json_at = [i for i, f in enumerate(fields) if f.get_internal_type() == "JSONField"]
    table = connection.ops.quote_name(model._meta.db_table)

    # A history entry's `data` repeats from row to row (the same holders): each distinct
    # document of strings is encoded once per call (5 -> 2 us a row). Strings only: 1, 1.0 and
    # True are one dictionary key, but three JSON texts.
    encoded: dict[tuple, str] = {}

    def dumps(value: Any) -> str:
        # Most JSON values of a new row are empty (altnames, pinned, findings...).
        if not value and isinstance(value, list | dict):
            return "[]" if isinstance(value, list) else "{}"
        if isinstance(value, dict):
            key = tuple(value.items())
            if all(type(item) is str for _, item in key):
                text = encoded.get(key)
                if text is None:
                    text = encoded[key] = json.dumps(value)
                return text
        return json.dumps(value)

    with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            try:  # the rows a first sight builds hold every column
                values = list(values_of(row))
            except KeyError:
                values = list(values_of(defaults | row))
            for index in json_at:
                values[index] = dumps(values[index])
            copy.write_row(values)


def _update_nodes(updates: list[tuple[Node, list[str]]]) -> int:
    """One UPDATE per changed node row, sent as one pipelined batch."""
    written = 0
    by_fields: dict[tuple[str, ...], list[Node]] = {}
    for node, fields in updates:
        if fields:
            by_fields.setdefault(tuple(sorted(set(fields))), []).append(node)
    table = connection.ops.quote_name(Node._meta.db_table)
    for fields, nodes in by_fields.items():
        model_fields = [Node._meta.get_field(name) for name in fields]
        assignments = ", ".join(f"{connection.ops.quote_name(f.column)} = %s" for f in model_fields)
        params = [
            [f.get_db_prep_save(getattr(node, f.attname), connection) for f in model_fields]
            + [node.pk]
            for node in nodes
        ]
        with connection.cursor() as cursor:
            # Identifiers from the model's own metadata, quoted; every value is a parameter.
            sql = f"UPDATE {table} SET {assignments} WHERE id = %s"  # noqa: S608
            cursor.executemany(sql, params)
        written += len(nodes)
    return written
