"""An agent's snapshot (nodeagent.schema) -> the node's Interface rows: their facts, compared by
digest so that an unchanged link writes nothing, and their presence (a vanished link is kept,
`present=False`). Verdicts are judged before writing, so a changed row gets facts and verdict in
one UPDATE."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from inventory.choices import IdentityKind
from inventory.models import HistoryEntry, Interface, Node
from inventory.sync.contact import note_contact
from inventory.sync.lint import mark_lint_dirty
from inventory.sync.stats import BATCH_SIZE, SyncStats, clip_row
from inventory.sync.verdicts import (
    VERDICT_FIELDS,
    decide,
    forget_gone,
    history_for,
    save_findings,
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
    # Added later: a digest covers them only when set (facts_digest).
    ("pf_pci_address", "pf_pci_address", ""),
    ("vf_index", "vf_index", None),
)
_ADDED_LINK_FIELDS = ("pf_pci_address", "vf_index")


FACT_FIELDS = tuple(f for _, f, _ in _LINK_FIELDS) + ("pf", "has_netdev")
_DIGEST_FIELDS = tuple(f for f in FACT_FIELDS if f not in _ADDED_LINK_FIELDS)


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
            model: (empty if (value := link.get(key)) is None else value)
            for key, model, empty in _LINK_FIELDS
        }
        for key in ("mac", "permanent_mac", "pci_address", "pf_pci_address"):
            row[key] = (row[key] or "").lower()
        row["pf"] = link.get("pf_name") or link.get("pf_pci_address") or ""
        row["has_netdev"] = True
        row["identity_kind"] = kind
        facts[ident] = clip_row(row)
    for fn in snapshot.get("pci_functions", []):
        ident = fn["pci_address"].lower()
        if ident in facts:
            continue
        row = {
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
            "pf": fn.get("pf_name") or fn.get("pf_pci_address") or "",
            "pf_pci_address": (fn.get("pf_pci_address") or "").lower(),
            "vf_index": fn.get("vf_index"),
            "has_netdev": False,
            "identity_kind": IdentityKind.PCI,
        }
        # pf_name is any string the agent sends: cut to the column like a link's facts.
        facts[ident] = clip_row(row)
    return facts


def facts_digest(row: dict) -> str:
    """A hash of the row's agent facts. Facts added after rows were first stored count only
    when set, so that a row without them keeps the digest it was stored with: the first sweep
    after an upgrade rewrites the rows that gained a fact (the SR-IOV VFs), not the fleet."""
    values: list = list(map(row.get, _DIGEST_FIELDS))
    added = {f: row.get(f) for f in _ADDED_LINK_FIELDS if row.get(f) not in (None, "")}
    if added:
        values.append(added)
    blob = _DIGEST_ENCODER.encode(values)
    return hashlib.blake2b(blob.encode(), digest_size=16).hexdigest()


# json.dumps(values, sort_keys=True, default=str), whose text every stored digest was made
# from, without building an encoder per call.
_DIGEST_ENCODER = json.JSONEncoder(sort_keys=True, default=str)


def _keep_name_of_vanished(iface: Interface, row: dict) -> None:
    # A netdev-less PCI function has no name: keep the last name we knew so people recognise it.
    if not row["name"] and iface.name:
        row["name"] = iface.name
        row["mac"] = row["mac"] or iface.mac
        row["permanent_mac"] = row["permanent_mac"] or iface.permanent_mac


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
                        node_name=node.name,
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
        node_fields = node_snapshot_fields(
            node, snapshot, etag=etag, now=now, fields=note_contact(node, now)
        )
        if node_fields:
            node.save(update_fields=node_fields)
            stats.node_rows += 1

        # Judge before writing (ownership is pure and every fact is in memory): new interfaces
        # are inserted with their verdict and changed ones get facts and verdict in one UPDATE,
        # so a cold node costs two INSERTs (interfaces, history) instead of INSERT + UPDATE.
        judged, gone, findings = [], [], node.findings
        if to_create or to_update or vanished or "stale" in node_fields:
            judgement = decide(node, [*existing.values(), *to_create], now)
            judged, gone, findings = judgement.changes, judgement.gone, judgement.findings
        # A virtual link gone for good is deleted, not written as vanished.
        gone_ids = {id(i) for i in gone}
        to_update = [i for i in to_update if id(i) not in gone_ids]
        vanished = [i for i in vanished if id(i) not in gone_ids]
        if to_create:
            Interface.objects.bulk_create(to_create, batch_size=BATCH_SIZE)
            stats.created = len(to_create)
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
                batch_size=BATCH_SIZE,
            )
            stats.updated = len(to_update)
        if vanished:
            Interface.objects.bulk_update(
                vanished, ["present", *VERDICT_FIELDS], batch_size=BATCH_SIZE
            )
            stats.vanished = len(vanished)
        written = {id(i) for i in (*to_create, *to_update, *vanished)}
        verdict_only = [c.interface for c in judged if id(c.interface) not in written]
        if verdict_only:
            Interface.objects.bulk_update(verdict_only, VERDICT_FIELDS, batch_size=BATCH_SIZE)
        # Verdicts of inserted or updated rows rode along; count only the extra row writes.
        stats.verdicts_changed = len(verdict_only)
        history = history_for(node, judged, now)
        if history:
            HistoryEntry.objects.bulk_create(history, batch_size=BATCH_SIZE)
            stats.history = len(history)
        forget_gone(node, gone, now, stats)
        save_findings(node, findings, now, stats)
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


def node_snapshot_fields(
    node: Node, snapshot: dict, *, etag: str, now: datetime, fields: list[str]
) -> list[str]:
    """Set the node's agent facts (version, ETag, CNI) from a snapshot, in memory. `fields` are
    those already changed (by note_contact); returns every field to save, [] for none."""
    fields = list(fields)
    for attr, value in (
        ("agent_version", _clip_node("agent_version", snapshot.get("agent_version", ""))),
        ("agent_etag", _clip_node("agent_etag", etag)),
        ("cni", snapshot.get("cni") or {}),
    ):
        if getattr(node, attr) != value:
            setattr(node, attr, value)
            fields.append(attr)
    collected = _parse_time(snapshot.get("collected_at"))
    if fields:
        if "last_contact_at" not in fields:  # the row is written anyway: keep it true
            node.last_contact_at = now
            fields.append("last_contact_at")
        if collected and "agent_etag" in fields:
            node.collected_at = collected
            fields.append("collected_at")
    return fields


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
