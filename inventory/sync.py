"""Apply what the agents and the Kubernetes API say to the database.

Rules that everything here keeps:
- one transaction per node (a snapshot) or per cluster listing, so a reader never sees half a node;
- nothing is written when nothing changed: agent facts are compared by digest, verdicts by
  (state, reason, holder), cluster objects field by field. A warm sweep writes zero rows;
- interfaces are never deleted because a poll failed or a link vanished: they become
  `present=False` (then `pod` or `missing`), or `unknown` when their agent stops answering;
- every ownership change (state or holder) appends a HistoryEntry in the same transaction.

Concurrency: two writers for one node (a beat sweep and a hint-triggered poll) are serialised by
the per-node lock in tasks.py; inside, the node row is locked (SELECT ... FOR UPDATE on
PostgreSQL) so that even an unlocked caller cannot interleave two snapshots of one node.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from inventory import ownership
from inventory.choices import AttachmentStatus, HistoryKind, IdentityKind, NadOrigin
from inventory.models import (
    Cluster,
    HistoryEntry,
    Interface,
    NetworkAttachment,
    Node,
    PodAttachment,
    Reservation,
    contact_cache_key,
)

log = logging.getLogger(__name__)

# Kinds whose MAC is borrowed from another link (a bridge or bond takes a port's MAC, a vlan its
# parent's) and which host-device cannot hand to a pod anyway: their name is their identity.
_NAME_IDENTITY_KINDS = frozenset(
    {
        "loopback",
        "bridge",
        "bond",
        "team",
        "vlan",
        "macvlan",
        "ipvlan",
        "vxlan",
        "geneve",
        "tun",
        "dummy",
        "wireguard",
        "ipip",
        "sit",
        "gre",
        "openvswitch",
    }
)

# Agent facts copied onto Interface rows: (snapshot key, model field, empty value).
_LINK_FIELDS: tuple[tuple[str, str, object], ...] = (
    ("name", "name", ""),
    ("ifindex", "ifindex", None),
    ("altnames", "altnames", []),
    ("alias", "alias", ""),
    ("mac", "mac", ""),
    ("permanent_mac", "permanent_mac", ""),
    ("kind", "kind", ""),
    ("driver", "driver", ""),
    ("pci_address", "pci_address", ""),
    ("vendor_id", "vendor_id", ""),
    ("device_id", "device_id", ""),
    ("speed_mbps", "speed_mbps", None),
    ("mtu", "mtu", None),
    ("operstate", "operstate", ""),
    ("carrier", "carrier", None),
    ("numa_node", "numa_node", None),
    ("sriov_total_vfs", "sriov_total_vfs", None),
    ("sriov_num_vfs", "sriov_num_vfs", None),
    ("master", "master", ""),
    ("master_kind", "master_kind", ""),
    ("wireless", "wireless", False),
    ("addresses", "addresses", []),
    ("default_route_v4", "default_route_v4", False),
    ("default_route_v6", "default_route_v6", False),
)
FACT_FIELDS = tuple(f for _, f, _ in _LINK_FIELDS) + ("pf", "has_netdev")
VERDICT_FIELDS = ("state", "reason", "holder", "orphan", "state_changed_at")
# Fields that may be longer in a hostile snapshot than the columns allow.
_MAX_LEN = {f.name: f.max_length for f in Interface._meta.fields if getattr(f, "max_length", None)}


@dataclass
class SyncStats:
    created: int = 0
    updated: int = 0
    vanished: int = 0
    verdicts_changed: int = 0
    history: int = 0
    node_rows: int = 0
    other_rows: int = 0
    agent_failures: int = 0  # not rows: how many agents did not answer usefully
    messages: list[str] = field(default_factory=list)
    # Nodes whose pod claims changed in a listing applied without recomputing verdicts.
    touched_nodes: set[int] = field(default_factory=set)

    @property
    def rows_written(self) -> int:
        return (
            self.created
            + self.updated
            + self.vanished
            + self.verdicts_changed
            + self.history
            + self.node_rows
            + self.other_rows
        )

    def add(self, other: SyncStats) -> None:
        for name in (
            "created",
            "updated",
            "vanished",
            "verdicts_changed",
            "history",
            "node_rows",
            "other_rows",
            "agent_failures",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.messages.extend(other.messages)
        self.touched_nodes |= other.touched_nodes


# --------------------------------------------------------------------------- snapshot -> facts


def link_identity(link: dict) -> tuple[str, str]:
    """PCI address, else permanent MAC, else MAC (docs/ARCHITECTURE.md); virtual links whose MAC
    is borrowed from a port or parent are identified by name."""
    if link.get("kind") in _NAME_IDENTITY_KINDS and not link.get("pci_address"):
        return IdentityKind.NAME, link["name"]
    if link.get("pci_address"):
        return IdentityKind.PCI, link["pci_address"].lower()
    if link.get("permanent_mac"):
        return IdentityKind.PERMANENT_MAC, link["permanent_mac"].lower()
    if link.get("mac"):
        return IdentityKind.MAC, link["mac"].lower()
    return IdentityKind.NAME, link["name"]


def _clip(field_name: str, value: object) -> object:
    limit = _MAX_LEN.get(field_name)
    if limit and isinstance(value, str) and len(value) > limit:
        return value[:limit]
    return value


def snapshot_facts(snapshot: dict) -> dict[str, dict]:
    """identity -> {model field: value} for every link and netdev-less PCI function."""
    facts: dict[str, dict] = {}
    for link in snapshot.get("links", []):
        kind, ident = link_identity(link)
        if ident in facts:  # two links claim one identity (e.g. a veth pair end with a copied
            kind, ident = IdentityKind.NAME, link["name"]  # MAC): fall back to the name
            if ident in facts:
                log.warning("node=%s duplicate link name %r ignored", snapshot.get("node"), ident)
                continue
        row = {
            model: (link.get(key) if link.get(key) is not None else empty)
            for key, model, empty in _LINK_FIELDS
        }
        for key in ("mac", "permanent_mac", "pci_address"):
            row[key] = (row[key] or "").lower()
        row["pf"] = link.get("pf_name") or link.get("pf_pci_address") or ""
        row["has_netdev"] = True
        row["identity_kind"] = kind
        facts[ident] = {k: _clip(k, v) for k, v in row.items()}
    for fn in snapshot.get("pci_functions", []):
        ident = fn["pci_address"].lower()
        if ident in facts:
            continue
        facts[ident] = {
            "name": "",
            "ifindex": None,
            "altnames": [],
            "alias": "",
            "mac": "",
            "permanent_mac": "",
            "kind": "physical",
            "driver": fn.get("driver") or "",
            "pci_address": ident,
            "vendor_id": fn.get("vendor_id") or "",
            "device_id": fn.get("device_id") or "",
            "speed_mbps": None,
            "mtu": None,
            "operstate": "",
            "carrier": None,
            "numa_node": fn.get("numa_node"),
            "sriov_total_vfs": fn.get("sriov_total_vfs"),
            "sriov_num_vfs": fn.get("sriov_num_vfs"),
            "master": "",
            "master_kind": "",
            "wireless": False,
            "addresses": [],
            "default_route_v4": False,
            "default_route_v6": False,
            "pf": fn.get("pf_pci_address") or "",
            "has_netdev": False,
            "identity_kind": IdentityKind.PCI,
        }
    return facts


def facts_digest(row: dict) -> str:
    blob = json.dumps([row.get(f) for f in FACT_FIELDS], sort_keys=True, default=str)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


def _keep_name_of_vanished(iface: Interface, row: dict) -> None:
    # A netdev-less PCI function has no name: keep the last name we knew so people recognise it.
    if not row["name"] and iface.name:
        row["name"] = iface.name
        row["mac"] = row["mac"] or iface.mac
        row["permanent_mac"] = row["permanent_mac"] or iface.permanent_mac


# --------------------------------------------------------------------------- ownership


def _to_link_facts(iface: Interface) -> ownership.LinkFacts:
    return ownership.LinkFacts(
        key=iface.identity,
        name=iface.name,
        kind=iface.kind,
        mac=iface.mac,
        permanent_mac=iface.permanent_mac,
        alias=iface.alias,
        altnames=tuple(iface.altnames or ()),
        master=iface.master,
        master_kind=iface.master_kind,
        addresses=tuple(
            f"{a['address']}/{a['prefixlen']}"
            for a in (iface.addresses or [])
            if isinstance(a, dict) and "address" in a and "prefixlen" in a
        ),
        default_route_v4=iface.default_route_v4,
        default_route_v6=iface.default_route_v6,
        driver=iface.driver,
        pci_address=iface.pci_address,
        pf_pci_address=iface.pf if ":" in iface.pf and "." in iface.pf else "",
        sriov_num_vfs=iface.sriov_num_vfs or 0,
        wireless=iface.wireless,
        has_netdev=iface.has_netdev,
        present=iface.present,
    )


def node_is_fresh(node: Node, now: datetime) -> bool:
    contact = last_contact(node)
    if contact is None:
        return False
    return (now - contact).total_seconds() <= settings.AGENT_STALE_AFTER


def _node_facts(node: Node, now: datetime) -> ownership.NodeFacts:
    return ownership.NodeFacts(
        name=node.name,
        internal_ips=tuple(node.internal_ips or ()),
        agent_fresh=not node.stale,
        agent_last_contact=last_contact(node),
        veth_nics=str((node.labels or {}).get("nicportal.io/veth-nics", "")).lower() == "true",
    )


def _claims(node: Node) -> list[ownership.PodClaim]:
    rows = PodAttachment.objects.filter(node=node, status=AttachmentStatus.ATTACHED).only(
        "namespace", "pod_name", "nad_namespace", "nad_name", "pod_interface", "mac"
    )
    return [
        ownership.PodClaim(
            namespace=a.namespace,
            pod=a.pod_name,
            nad=f"{a.nad_namespace}/{a.nad_name}",
            pod_interface=a.pod_interface,
            mac=a.mac,
        )
        for a in rows
    ]


def _reservations(node: Node) -> dict[str, ownership.ReservationFacts]:
    rows = Reservation.objects.filter(
        interface__node=node, released_at__isnull=True
    ).select_related("team", "created_by", "interface")
    return {
        r.interface.identity: ownership.ReservationFacts(
            team=r.team.name,
            expires_at=r.expires_at,
            purpose=r.purpose,
            reserved_by=r.created_by.get_username(),
        )
        for r in rows
    }


def _decide(node: Node, interfaces: Sequence[Interface], now: datetime) -> list[Interface]:
    """Recompute verdicts; return the interfaces whose verdict changed (history rows added to
    `_pending_history` by the caller through the returned objects' `_old_state`)."""
    verdicts = ownership.decide_node(
        _node_facts(node, now),
        [_to_link_facts(i) for i in interfaces],
        claims=_claims(node),
        reservations=_reservations(node),
    )
    changed = []
    for iface, verdict in zip(interfaces, verdicts, strict=True):
        state = str(verdict.state)
        reason = _clip("reason", verdict.reason)
        holder = _clip("holder", verdict.holder)
        orphan = bool(verdict.orphan)
        if (iface.state, iface.reason, iface.holder, iface.orphan) == (
            state,
            reason,
            holder,
            orphan,
        ):
            continue
        iface._old_state = iface.state  # type: ignore[attr-defined]
        iface._old_holder = iface.holder  # type: ignore[attr-defined]
        iface.state, iface.reason, iface.holder, iface.orphan = state, reason, holder, orphan
        if iface._old_state != state:  # type: ignore[attr-defined]
            iface.state_changed_at = now
        changed.append(iface)
    return changed


def _history_for(node: Node, changed: Iterable[Interface], now: datetime) -> list[HistoryEntry]:
    entries = []
    for iface in changed:
        old_state, old_holder = iface._old_state, iface._old_holder  # type: ignore[attr-defined]
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
                message=f"{iface.name or iface.identity}: {old_state} -> {iface.state}: "
                f"{iface.reason}",
                data={"holder": iface.holder, "old_holder": old_holder},
            )
        )
    return entries


def _save_verdicts(node: Node, changed: list[Interface], now: datetime, stats: SyncStats) -> None:
    if not changed:
        return
    Interface.objects.bulk_update(changed, VERDICT_FIELDS, batch_size=500)
    stats.verdicts_changed += len(changed)
    mark_lint_dirty(node.cluster_id)
    history = _history_for(node, changed, now)
    HistoryEntry.objects.bulk_create(history, batch_size=500)
    stats.history += len(history)


def refresh_node_ownership(node: Node, *, now: datetime | None = None) -> SyncStats:
    """Recompute every verdict of one node from what is stored (after a reservation, a cluster
    listing that changed the node's pods, or a staleness change)."""
    now = now or timezone.now()
    stats = SyncStats()
    with transaction.atomic():
        interfaces = list(Interface.objects.filter(node=node).order_by("id"))
        _save_verdicts(node, _decide(node, interfaces, now), now, stats)
    return stats


def refresh_ownership(interface_ids: Iterable[int] = (), *, node_ids: Iterable[int] = ()) -> int:
    """Recompute the verdicts of the nodes holding these interfaces. Returns rows changed."""
    ids = set(node_ids) | set(
        Interface.objects.filter(pk__in=list(interface_ids)).values_list("node_id", flat=True)
    )
    total = 0
    for node in Node.objects.filter(pk__in=ids):
        total += refresh_node_ownership(node).verdicts_changed
    return total


# --------------------------------------------------------------------------- agent contact


def last_contact(node: Node) -> datetime | None:
    """Last successful agent answer (see Node.last_contact)."""
    return node.last_contact


def _note_contact(node: Node, now: datetime, contacts: dict | None = None) -> list[str]:
    """Record an answer from the node's agent. Only the cache is written, unless the node's
    health changes (first contact, back from stale, error cleared): a warm sweep writes nothing.
    With `contacts` the cache write is left to the caller, who writes a sweep's worth at once."""
    if contacts is None:
        cache.set(contact_cache_key(node.pk), now, timeout=None)
    else:
        contacts[contact_cache_key(node.pk)] = now
    fields = []
    if node.last_contact_at is None or node.stale or node.agent_error:
        node.last_contact_at = now
        fields.append("last_contact_at")
    if node.stale:
        node.stale = False
        fields.append("stale")
    if node.agent_error:
        node.agent_error = ""
        fields.append("agent_error")
    return fields


def apply_snapshot(
    node: Node, snapshot: dict, *, etag: str = "", now: datetime | None = None
) -> SyncStats:
    """Apply one validated agent snapshot (nodeagent.schema) to the node's interfaces."""
    now = now or timezone.now()
    stats = SyncStats()
    facts = snapshot_facts(snapshot)
    with transaction.atomic():
        node = Node.objects.select_for_update().get(pk=node.pk)
        existing = {i.identity: i for i in Interface.objects.filter(node=node).order_by("id")}
        to_create, to_update = [], []
        for ident, row in facts.items():
            iface = existing.get(ident)
            if iface is None:
                digest = facts_digest(row)
                to_create.append(
                    Interface(
                        node=node,
                        identity=ident,
                        facts_digest=digest,
                        present=True,
                        first_seen_at=now,
                        last_seen_at=now,
                        state_changed_at=now,
                        **row,
                    )
                )
                continue
            _keep_name_of_vanished(iface, row)
            digest = facts_digest(row)
            if iface.facts_digest == digest and iface.present:
                continue
            for key, value in row.items():
                setattr(iface, key, value)
            iface.facts_digest = digest
            iface.present = True
            iface.last_seen_at = now
            to_update.append(iface)
        vanished = [i for ident, i in existing.items() if ident not in facts and i.present]
        for iface in vanished:
            iface.present = False
        node_fields = _note_contact(node, now)
        for attr, value in (
            ("agent_version", _clip_node("agent_version", snapshot.get("agent_version", ""))),
            ("agent_etag", _clip_node("agent_etag", etag)),
            ("cni", snapshot.get("cni") or {}),
        ):
            if getattr(node, attr) != value:
                setattr(node, attr, value)
                node_fields.append(attr)
        collected = _parse_time(snapshot.get("collected_at"))
        if node_fields:
            if "last_contact_at" not in node_fields:  # the row is written anyway: keep it true
                node.last_contact_at = now
                node_fields.append("last_contact_at")
            if collected and "agent_etag" in node_fields:
                node.collected_at = collected
                node_fields.append("collected_at")
            node.save(update_fields=node_fields)
            stats.node_rows += 1

        # Judge before writing (ownership is pure and every fact is in memory): new interfaces
        # are inserted with their verdict and changed ones get facts and verdict in one UPDATE,
        # so a cold node costs two INSERTs (interfaces, history) instead of INSERT + UPDATE.
        judged: list[Interface] = []
        if to_create or to_update or vanished or "stale" in node_fields:
            judged = _decide(node, [*existing.values(), *to_create], now)
        if to_create:
            Interface.objects.bulk_create(to_create, batch_size=500)
            stats.created = len(to_create)
        written = {id(i) for i in to_create}
        if to_update:
            Interface.objects.bulk_update(
                to_update,
                [
                    *FACT_FIELDS,
                    "identity_kind",
                    "facts_digest",
                    "present",
                    "last_seen_at",
                    *VERDICT_FIELDS,
                ],
                batch_size=500,
            )
            stats.updated = len(to_update)
            written |= {id(i) for i in to_update}
        if vanished:
            Interface.objects.bulk_update(vanished, ["present", *VERDICT_FIELDS], batch_size=500)
            stats.vanished = len(vanished)
            written |= {id(i) for i in vanished}
        verdict_only = [i for i in judged if id(i) not in written]
        if verdict_only:
            Interface.objects.bulk_update(verdict_only, VERDICT_FIELDS, batch_size=500)
        # Verdicts of inserted or updated rows rode along; count only the extra row writes.
        stats.verdicts_changed = len(verdict_only)
        history = _history_for(node, judged, now)
        if history:
            HistoryEntry.objects.bulk_create(history, batch_size=500)
            stats.history = len(history)
        if to_create or to_update or vanished or judged:
            mark_lint_dirty(node.cluster_id)
    if stats.rows_written:
        log.info(
            "node=%s snapshot applied created=%d updated=%d vanished=%d verdicts=%d",
            node.name,
            stats.created,
            stats.updated,
            stats.vanished,
            stats.verdicts_changed,
        )
    return stats


def _clip_node(field_name: str, value: str) -> str:
    limit = Node._meta.get_field(field_name).max_length
    return value[:limit] if isinstance(value, str) else ""


def _parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def note_not_modified(
    node: Node, *, now: datetime | None = None, contacts: dict | None = None
) -> SyncStats:
    """The agent answered 304: the node is alive and unchanged. Writes nothing unless the node
    was stale (its verdicts come back from `unknown`)."""
    now = now or timezone.now()
    stats = SyncStats()
    fields = _note_contact(node, now, contacts)
    if fields:
        with transaction.atomic():
            node.save(update_fields=fields)
            stats.node_rows += 1
            if "stale" in fields:
                interfaces = list(Interface.objects.filter(node=node).order_by("id"))
                _save_verdicts(node, _decide(node, interfaces, now), now, stats)
    return stats


def note_agent_failure(node: Node, error: str, *, now: datetime | None = None) -> SyncStats:
    """The agent did not answer (or answered garbage). Facts are kept; once the last contact is
    older than AGENT_STALE_AFTER the node turns stale and its interfaces `unknown`."""
    now = now or timezone.now()
    stats = SyncStats(agent_failures=1)
    error = error[:2000]
    contact = last_contact(node)
    becomes_stale = contact is None or (
        (now - contact).total_seconds() > settings.AGENT_STALE_AFTER
    )
    fields = []
    if node.agent_error != error:
        node.agent_error = error
        fields.append("agent_error")
    if becomes_stale and not node.stale:
        node.stale = True
        fields.append("stale")
    if not fields:
        return stats
    with transaction.atomic():
        node.save(update_fields=fields)
        stats.node_rows += 1
        if "stale" in fields:
            log.warning(
                "node=%s agent unreachable since %s: %s; interfaces now unknown",
                node.name,
                contact,
                error,
            )
            HistoryEntry.objects.create(
                at=now,
                kind=HistoryKind.AGENT,
                node=node,
                message=f"agent on {node.name} stopped answering: {error}",
            )
            stats.history += 1
            interfaces = list(Interface.objects.filter(node=node).order_by("id"))
            _save_verdicts(node, _decide(node, interfaces, now), now, stats)
    return stats


# --------------------------------------------------------------------------- cluster listing


def get_cluster(name: str | None = None) -> Cluster:
    cluster, _ = Cluster.objects.get_or_create(name=name or settings.CLUSTER_NAME)
    return cluster


def _changed(obj, values: dict) -> list[str]:
    fields = [k for k, v in values.items() if getattr(obj, k) != v]
    for k in fields:
        setattr(obj, k, values[k])
    return fields


def apply_listing(
    cluster: Cluster, listing, *, now: datetime | None = None, recompute: bool = True
) -> SyncStats:
    """Apply a cluster.ClusterListing: nodes, agent endpoints, NADs and pod attachments. Then
    recompute the verdicts of every node whose pod claims changed.

    A sweep passes recompute=False and recomputes after polling the agents: judging new claims
    against the previous snapshot would flash a NIC through `missing` (pod gone from the API,
    NIC back on the host but not yet re-read) and write history for a state that never was."""
    now = now or timezone.now()
    stats = SyncStats()
    with transaction.atomic():
        nodes = _apply_nodes(cluster, listing, stats)
        _apply_nads(cluster, listing.nads, now, stats)
        touched = _apply_attachments(cluster, listing, nodes, now, stats)
    if not recompute:
        stats.touched_nodes |= touched
        return stats
    for node in Node.objects.filter(pk__in=touched):
        stats.add(refresh_node_ownership(node, now=now))
    return stats


def _apply_nodes(cluster: Cluster, listing, stats: SyncStats) -> dict[str, Node]:
    existing = {n.name: n for n in Node.objects.filter(cluster=cluster)}
    endpoints = listing.agent_endpoints
    to_create, to_update, update_fields = [], [], set()
    seen = set()
    for info in listing.nodes:
        seen.add(info.name)
        values = {
            "internal_ips": list(info.internal_ips),
            "labels": dict(info.labels),
            "ready": bool(info.ready),
            "agent_url": endpoints.get(info.name, "")[:500],
            "in_cluster": True,
        }
        node = existing.get(info.name)
        if node is None:
            node = Node(cluster=cluster, name=info.name[:253], **values)
            to_create.append(node)
            existing[info.name] = node
            continue
        changed = _changed(node, values)
        if changed:
            to_update.append(node)
            update_fields.update(changed)
    gone = [n for name, n in existing.items() if name not in seen and n.in_cluster and n.pk]
    for node in gone:
        node.in_cluster = False
        to_update.append(node)
        update_fields.add("in_cluster")
    if to_create:
        Node.objects.bulk_create(to_create, batch_size=500)
        stats.node_rows += len(to_create)
        # bulk_create sets pks on PostgreSQL and SQLite >= 3.35; re-read to be portable.
        existing.update(
            {
                n.name: n
                for n in Node.objects.filter(cluster=cluster, name__in=[n.name for n in to_create])
            }
        )
    if to_update:
        Node.objects.bulk_update(to_update, sorted(update_fields), batch_size=500)
        stats.node_rows += len(to_update)
    return existing


def _apply_nads(cluster: Cluster, nads, now: datetime, stats: SyncStats) -> None:
    existing = {(n.namespace, n.name): n for n in NetworkAttachment.objects.filter(cluster=cluster)}
    seen = set()
    to_create, to_update, fields = [], [], set()
    for info in nads:
        key = (info.namespace, info.name)
        seen.add(key)
        values = {
            "uid": info.uid[:64],
            "config": info.config,
            "annotations": dict(info.annotations),
            "resource_name": info.resource_name[:253],
            "in_cluster": True,
        }
        row = existing.get(key)
        if row is None:
            to_create.append(
                NetworkAttachment(
                    cluster=cluster,
                    namespace=info.namespace[:63],
                    name=info.name[:253],
                    first_seen_at=now,
                    **values,
                )
            )
            continue
        changed = _changed(row, values)
        if changed:
            to_update.append(row)
            fields.update(changed)
    for key, row in existing.items():
        if key not in seen and row.in_cluster:
            row.in_cluster = False
            to_update.append(row)
            fields.add("in_cluster")
    if to_create or to_update:
        mark_lint_dirty(cluster.pk)
    if to_create:
        NetworkAttachment.objects.bulk_create(to_create, batch_size=500)
        stats.other_rows += len(to_create)
    if to_update:
        NetworkAttachment.objects.bulk_update(
            to_update, sorted(fields | {"updated_at"}), batch_size=500
        )
        stats.other_rows += len(to_update)


def _failures_by_pod(listing) -> dict[tuple[str, str], str]:
    failures: dict[tuple[str, str], tuple[datetime | None, str]] = {}
    for ev in listing.sandbox_failures:
        key = (ev.namespace, ev.pod)
        current = failures.get(key)
        if current is None or (ev.last_seen and (current[0] is None or ev.last_seen > current[0])):
            failures[key] = (ev.last_seen, ev.message)
    return {k: v[1] for k, v in failures.items()}


def _apply_attachments(
    cluster: Cluster, listing, nodes: dict[str, Node], now: datetime, stats: SyncStats
) -> set[int]:
    """PodAttachment rows from the pods' Multus annotations. Returns ids of nodes whose claims
    changed (their verdicts must be recomputed)."""
    failures = _failures_by_pod(listing)
    existing = {
        (a.namespace, a.pod_name, a.nad_namespace, a.nad_name, a.pod_interface): a
        for a in PodAttachment.objects.filter(cluster=cluster)
    }
    wanted: dict[tuple, dict] = {}
    for pod in listing.pods:
        if not pod.networks and not pod.network_status:
            continue
        node = nodes.get(pod.node_name)
        status_by_nad = defaultdict(list)
        for st in pod.network_status:
            if st.default:
                continue
            ns, _, name = st.name.partition("/")
            if not name:
                ns, name = pod.namespace, ns
            status_by_nad[(ns, name)].append(st)
        for st_list in status_by_nad.values():
            for st in st_list:
                ns, _, name = st.name.partition("/")
                if not name:
                    ns, name = pod.namespace, ns
                wanted[(pod.namespace, pod.name, ns, name, st.interface or "")] = {
                    "node": node,
                    "pod_uid": pod.uid,
                    "mac": (st.mac or "").lower(),
                    "status": AttachmentStatus.ATTACHED,
                    "error": "",
                }
        for idx, sel in enumerate(pod.networks, start=1):
            if (sel.namespace, sel.name) in status_by_nad:
                continue
            error = failures.get((pod.namespace, pod.name), "")
            wanted[
                (pod.namespace, pod.name, sel.namespace, sel.name, sel.interface or f"net{idx}")
            ] = {
                "node": node,
                "pod_uid": pod.uid,
                "mac": (sel.mac or "").lower(),
                "status": AttachmentStatus.FAILED if error else AttachmentStatus.PENDING,
                "error": error,
            }
    touched: set[int] = set()
    to_create, to_update, fields = [], [], set()
    for key, values in wanted.items():
        values["node_id"] = values.pop("node").pk if values.get("node") else None
        row = existing.get(key)
        if row is None:
            row = PodAttachment(
                cluster=cluster,
                namespace=key[0][:63],
                pod_name=key[1][:253],
                nad_namespace=key[2][:63],
                nad_name=key[3][:253],
                pod_interface=key[4][:64],
                first_seen_at=now,
                **values,
            )
            to_create.append(row)
            if row.node_id:
                touched.add(row.node_id)
            continue
        old_node, old_status, old_mac = row.node_id, row.status, row.mac
        changed = _changed(row, values)
        if changed:
            to_update.append(row)
            fields.update(changed)
            if {"status", "mac", "node_id"} & set(changed):
                touched.update(n for n in (old_node, row.node_id) if n)
            del old_status, old_mac
    for key, row in existing.items():
        if key not in wanted and row.status != AttachmentStatus.GONE:
            if row.status == AttachmentStatus.ATTACHED and row.node_id:
                touched.add(row.node_id)
            row.status = AttachmentStatus.GONE
            to_update.append(row)
            fields.add("status")
    if to_create:
        PodAttachment.objects.bulk_create(to_create, batch_size=500)
        stats.other_rows += len(to_create)
    if to_update:
        PodAttachment.objects.bulk_update(
            to_update, sorted(fields | {"updated_at"}), batch_size=500
        )
        stats.other_rows += len(to_update)
    _link_attachments_to_interfaces(cluster, touched)
    return touched


def _link_attachments_to_interfaces(cluster: Cluster, node_ids: set[int]) -> None:
    """Point attached PodAttachments at the host Interface with their MAC (host-device keeps
    the NIC's MAC, so MAC + node identify the device)."""
    if not node_ids:
        return
    rows = list(PodAttachment.objects.filter(cluster=cluster, node_id__in=node_ids).exclude(mac=""))
    by_mac = {}
    for iface in Interface.objects.filter(node_id__in=node_ids).only(
        "id", "node_id", "mac", "permanent_mac"
    ):
        for mac in (iface.mac, iface.permanent_mac):
            if mac:
                by_mac[(iface.node_id, mac)] = iface.pk
    changed = []
    for row in rows:
        iface_id = by_mac.get((row.node_id, row.mac))
        if iface_id and row.interface_id != iface_id:
            row.interface_id = iface_id
            changed.append(row)
    if changed:
        PodAttachment.objects.bulk_update(changed, ["interface"], batch_size=500)


def mark_origin_portal(nad: NetworkAttachment) -> None:
    if nad.origin != NadOrigin.PORTAL:
        nad.origin = NadOrigin.PORTAL
        nad.save(update_fields=["origin", "updated_at"])


# --------------------------------------------------------------------------- NAD lint


def _lint_key(cluster_id: int) -> str:
    return f"nad-lint-dirty:{cluster_id}"


def mark_lint_dirty(cluster_id: int) -> None:
    """Findings depend on the NADs, the interfaces' facts and verdicts and the reservations:
    whatever changes one of them marks the cluster's lint as due."""
    cache.set(_lint_key(cluster_id), True, timeout=None)


def lint_cluster_nads(cluster: Cluster, *, force: bool = False) -> int:
    """Re-lint every NAD of the cluster against the current inventory when something they depend
    on changed (or force); write only the NADs whose findings changed. Returns rows written.

    An unknown flag (a fresh cache) counts as due, so a restart re-lints once. The flag is
    cleared before linting: a change made meanwhile marks it again for the next sweep."""
    from inventory import nad
    from inventory.services import facts

    if not force and not cache.get(_lint_key(cluster.pk), True):
        return 0
    cache.set(_lint_key(cluster.pk), False, timeout=None)

    nodes = list(Node.objects.filter(cluster=cluster, in_cluster=True))
    devices = facts.devices_by_node(nodes)
    plugins = facts.plugins_by_node(nodes)
    multus_version = cluster.multus_version or settings.MULTUS_VERSION
    changed = []
    for row in NetworkAttachment.objects.filter(cluster=cluster, in_cluster=True):
        try:
            findings = [
                f.as_dict()
                for f in nad.lint(
                    namespace=row.namespace,
                    name=row.name,
                    config=row.config,
                    annotations={k: str(v) for k, v in (row.annotations or {}).items()},
                    devices_by_node=devices,
                    plugins_by_node=plugins,
                    multus_version=multus_version,
                )
            ]
        except Exception as exc:  # noqa: BLE001 - one unreadable NAD must not stop the others
            log.exception("nad=%s/%s lint crashed", row.namespace, row.name)
            findings = [nad.lint_failed(exc).as_dict()]
        if row.findings != findings:
            row.findings = findings
            changed.append(row)
    if changed:
        NetworkAttachment.objects.bulk_update(changed, ["findings", "updated_at"], batch_size=200)
    return len(changed)
