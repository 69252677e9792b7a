"""The ownership verdicts of a node's interfaces: judged by the pure rules from what is stored,
written only where they changed, with one HistoryEntry per change of state or holder and one per
reservation breach that starts or ends. Virtual links the rules call gone for good (a Calico veth
whose pod was deleted) are dropped from the inventory, with a HistoryEntry saying so. Where the
snapshot contradicts the Kubernetes API (rules/crosscheck.py) is stored on the node, and a
warning that appears or ends gets a HistoryEntry and a log line."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from inventory.choices import HistoryKind
from inventory.models import HistoryEntry, Interface, Node
from inventory.read import facts
from inventory.rules import crosscheck, ownership
from inventory.sync.lint import mark_lint_dirty
from inventory.sync.stats import BATCH_SIZE, SyncStats, clip

log = logging.getLogger(__name__)

VERDICT_FIELDS = ("state", "reason", "holder", "orphan", "breach", "pinned", "state_changed_at")


@dataclass(frozen=True, slots=True)
class VerdictChange:
    """An interface whose verdict was just changed in memory, with what it was before."""

    interface: Interface
    old_state: str
    old_holder: str
    old_breach: str = ""


@dataclass(frozen=True, slots=True)
class Judgement:
    changes: list[VerdictChange]  # changed in memory, to be saved
    gone: list[Interface]  # stored rows of virtual links gone for good, to be deleted
    # Where the snapshot contradicts the Kubernetes API, as Node.findings stores them.
    findings: list[dict] = field(default_factory=list)


def decide(node: Node, interfaces: Sequence[Interface], now: datetime) -> Judgement:
    """Recompute the verdicts of these interfaces of `node` in memory; return the changes and
    the rows the rules call gone for good (unsaved new rows are never among those: they are on
    the host)."""
    judged = ownership.judge_node(
        facts.node_facts(node),
        [facts.link_facts(i) for i in interfaces],
        claims=facts.pod_claims(node),
        reservations=facts.reservation_facts(node),
    )
    changes, gone = [], []
    for iface, verdict in zip(interfaces, judged.verdicts, strict=True):
        if verdict.gone and iface.pk is not None:
            gone.append(iface)
            continue
        state, reason, holder, orphan = verdict_values(verdict)
        breach = verdict.breach
        pinned = list(verdict.pinned)
        if (iface.state, iface.reason, iface.holder, iface.orphan, iface.breach, iface.pinned) == (
            state,
            reason,
            holder,
            orphan,
            breach,
            pinned,
        ):
            continue
        changes.append(
            VerdictChange(
                iface, old_state=iface.state, old_holder=iface.holder, old_breach=iface.breach
            )
        )
        iface.state, iface.reason, iface.holder, iface.orphan = state, reason, holder, orphan
        iface.breach, iface.pinned = breach, pinned
        if changes[-1].old_state != state:
            iface.state_changed_at = now
    return Judgement(changes, gone, [finding.as_dict() for finding in judged.findings])


def verdict_values(verdict: ownership.Verdict) -> tuple[str, str, str, bool]:
    """A verdict as the Interface columns hold it: state, reason, holder (clipped), orphan."""
    return (
        str(verdict.state),
        clip("reason", verdict.reason),
        clip("holder", verdict.holder),
        bool(verdict.orphan),
    )


def history_message(label: str, old_state: str, new_state: str, reason: str) -> str:
    return f"{label}: {old_state} -> {new_state}: {reason}"


def history_for(node: Node, changes: Iterable[VerdictChange], now: datetime) -> list[HistoryEntry]:
    entries = []
    for change in changes:
        iface, old_state, old_holder = change.interface, change.old_state, change.old_holder
        if iface.breach != change.old_breach and (iface.breach or change.old_breach):
            entries.append(_breach_entry(node, iface, change.old_breach, now))
        if old_state == iface.state and old_holder == iface.holder:
            continue  # only the wording of the reason changed
        entries.append(
            HistoryEntry(
                at=now,
                kind=HistoryKind.OWNERSHIP,
                interface=iface,
                node=node,
                old_state=old_state,
                new_state=iface.state,
                message=history_message(
                    iface.name or iface.identity, old_state, iface.state, iface.reason
                ),
                data={"holder": iface.holder, "old_holder": old_holder},
            )
        )
    return entries


def breach_message(label: str, breach: str, old_breach: str) -> str:
    if breach:
        return f"{label}: reservation breach: {breach}"
    return f"{label}: reservation breach over (was: {old_breach})"


def _breach_entry(node: Node, iface: Interface, old_breach: str, now: datetime) -> HistoryEntry:
    return HistoryEntry(
        at=now,
        kind=HistoryKind.BREACH,
        interface=iface,
        node=node,
        message=breach_message(iface.name or iface.identity, iface.breach, old_breach),
        data={"breach": iface.breach, "old_breach": old_breach, "holder": iface.holder},
    )


def findings_history(
    node: Node, old: Sequence[dict], new: Sequence[dict], now: datetime
) -> list[HistoryEntry]:
    """One log line per warning that appears or ends (informational findings are only shown: a
    node with two uplinks is no event), and one HistoryEntry for each of those that keeps a NIC
    `system` against the snapshot: the snapshot changed to hide what the portal had seen."""
    before = {f.get("message"): f for f in old if f.get("severity") == crosscheck.WARNING}
    after = {f["message"]: f for f in new if f["severity"] == crosscheck.WARNING}
    entries = []
    for message in sorted(after.keys() - before.keys()):
        log.warning("node=%s snapshot contradicts the Kubernetes API: %s", node.name, message)
        if after[message].get("kept"):
            text = f"snapshot contradicts the Kubernetes API: {message}"
            entries.append(_finding_entry(node, text, after[message], now))
    for message in sorted(before.keys() - after.keys()):
        log.info("node=%s contradiction with the Kubernetes API over: %s", node.name, message)
        if before[message].get("kept"):
            text = f"contradiction with the Kubernetes API over: {message}"
            entries.append(_finding_entry(node, text, before[message], now))
    return entries


def _finding_entry(node: Node, text: str, finding: dict, now: datetime) -> HistoryEntry:
    return HistoryEntry(
        at=now, kind=HistoryKind.AGENT, node=node, message=text, data={"finding": finding}
    )


def save_findings(node: Node, findings: list[dict], now: datetime, stats: SyncStats) -> None:
    """Store the node's findings if they changed, with their history. Inside the caller's
    transaction, with the node row locked or freshly read."""
    if node.findings == findings:
        return
    history = findings_history(node, node.findings or [], findings, now)
    node.findings = findings
    Node.objects.filter(pk=node.pk).update(findings=findings)
    stats.node_rows += 1
    HistoryEntry.objects.bulk_create(history)
    stats.history += len(history)


def forget_gone(node: Node, gone: Sequence[Interface], now: datetime, stats: SyncStats) -> None:
    """Delete the rows of virtual links gone for good, with one HistoryEntry each (their older
    history stays, its interface set to NULL). Inside the caller's transaction."""
    if not gone:
        return
    HistoryEntry.objects.bulk_create(
        [
            HistoryEntry(
                at=now,
                kind=HistoryKind.OWNERSHIP,
                node=node,
                old_state=iface.state,
                message=f"{iface.name or iface.identity}: gone from the host with the network "
                f"namespace it lived in; dropped from the inventory ({iface.reason})",
                data={"identity": iface.identity, "holder": iface.holder},
            )
            for iface in gone
        ],
        batch_size=BATCH_SIZE,
    )
    Interface.objects.filter(pk__in=[i.pk for i in gone]).delete()
    stats.history += len(gone)
    stats.vanished += len(gone)
    mark_lint_dirty(node.cluster_id)


def save_verdicts(
    node: Node,
    changes: list[VerdictChange],
    now: datetime,
    stats: SyncStats,
    *,
    recorded: frozenset[int] = frozenset(),
) -> None:
    """Store changed verdicts and their history; `recorded` interfaces get no ownership row
    because the caller writes one for its action (a reservation), with old and new state."""
    if not changes:
        return
    Interface.objects.bulk_update(
        [c.interface for c in changes], VERDICT_FIELDS, batch_size=BATCH_SIZE
    )
    stats.verdicts_changed += len(changes)
    mark_lint_dirty(node.cluster_id)
    history = history_for(node, [c for c in changes if c.interface.pk not in recorded], now)
    HistoryEntry.objects.bulk_create(history, batch_size=BATCH_SIZE)
    stats.history += len(history)


def rejudge(
    node: Node, now: datetime, stats: SyncStats, *, recorded: frozenset[int] = frozenset()
) -> None:
    """Judge and save every interface of the node, inside the caller's transaction."""
    deferred = node.get_deferred_fields()
    if deferred:  # a sweep's light row (services/polling.py): the facts, in one query
        node.refresh_from_db(fields=sorted(deferred))
    interfaces = list(Interface.objects.filter(node=node).order_by("id"))
    judgement = decide(node, interfaces, now)
    save_verdicts(node, judgement.changes, now, stats, recorded=recorded)
    forget_gone(node, judgement.gone, now, stats)
    save_findings(node, judgement.findings, now, stats)


def refresh_node_ownership(
    node: Node, *, now: datetime | None = None, recorded: frozenset[int] = frozenset()
) -> SyncStats:
    """Recompute every verdict of one node from what is stored (after a reservation, a cluster
    listing that changed the node's pods, or a staleness change)."""
    now = now or timezone.now()
    stats = SyncStats()
    with transaction.atomic():
        rejudge(node, now, stats, recorded=recorded)
    return stats


def refresh_ownership(
    interface_ids: Iterable[int] = (),
    *,
    node_ids: Iterable[int] = (),
    recorded_by_caller: bool = False,
) -> int:
    """Recompute the verdicts of the nodes holding these interfaces. Returns rows changed.

    recorded_by_caller=True: the caller writes the history row of these interfaces' change
    itself (a reserve, release or expiry says who and why, with old and new state), so no
    second, ownership row is written for them; other NICs of the node still get theirs."""
    interface_ids = list(interface_ids)
    ids = set(node_ids) | set(
        Interface.objects.filter(pk__in=interface_ids).values_list("node_id", flat=True)
    )
    recorded = frozenset(interface_ids) if recorded_by_caller else frozenset()
    total = 0
    for node in Node.objects.filter(pk__in=ids).select_related("cluster"):
        total += refresh_node_ownership(node, recorded=recorded).verdicts_changed
    return total
