"""The cluster listing (clients.cluster.ClusterListing) -> Node, NetworkAttachment and
PodAttachment rows, field by field (an unchanged object writes nothing; an object gone from the
API is kept with `in_cluster=False`, a gone pod's attachment as `gone`)."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Count, Max, Q
from django.utils import timezone

from inventory.choices import AttachmentStatus, HistoryKind, NadOrigin
from inventory.clients.cluster_objects import ClusterListing, NadInfo
from inventory.models import (
    Cluster,
    HistoryEntry,
    Interface,
    NetworkAttachment,
    Node,
    PodAttachment,
)
from inventory.rules import sriov
from inventory.sync.lint import mark_lint_dirty
from inventory.sync.stats import BATCH_SIZE, SyncStats, bulk_write, changed_fields
from inventory.sync.verdicts import refresh_node_ownership


def get_cluster(name: str | None = None) -> Cluster:
    cluster, _ = Cluster.objects.get_or_create(name=name or settings.CLUSTER_NAME)
    return cluster


def apply_listing(
    cluster: Cluster,
    listing: ClusterListing,
    *,
    now: datetime | None = None,
    recompute: bool = True,
) -> SyncStats:
    """Apply a ClusterListing: nodes, agent endpoints, NADs and pod attachments. Then
    recompute the verdicts of every node whose pod claims or Kubernetes addresses changed (the
    ownership rules cross-check the snapshot with those addresses).

    A sweep passes recompute=False and recomputes after polling the agents: judging new claims
    against the previous snapshot would flash a NIC through `missing` (pod gone from the API,
    NIC back on the host but not yet re-read) and write history for a state that never was."""
    now = now or timezone.now()
    stats = SyncStats()
    with transaction.atomic():
        known_rogues = {
            name: {row.get("pod") for row in rows}
            for name, rows in Node.objects.filter(cluster=cluster)
            .exclude(rogue_agents=[])
            .values_list("name", "rogue_agents")
        }
        readdressed: set[int] = set()
        nodes = _apply_nodes(cluster, listing, stats, readdressed)
        _note_new_rogue_agents(nodes, listing, known_rogues, now, stats)
        _apply_nads(cluster, listing.nads, now, stats)
        touched = _apply_attachments(cluster, listing, nodes, now, stats) | readdressed
    if not recompute:
        stats.touched_nodes |= touched
        return stats
    for node in Node.objects.filter(pk__in=touched).select_related("cluster"):
        stats.add(refresh_node_ownership(node, now=now))
    return stats


def listing_fingerprint(cluster: Cluster) -> tuple:
    """What apply_listing leaves in the cluster's rows, cheaply told apart (three aggregate
    queries): the nodes, NADs and pod attachments in the cluster and the highest id of each.
    A row added, deleted, or marked gone or back since is a different fingerprint."""
    fingerprint: list = []
    for rows, present in (
        (Node.objects.filter(cluster=cluster), Q(in_cluster=True)),
        (NetworkAttachment.objects.filter(cluster=cluster), Q(in_cluster=True)),
        (PodAttachment.objects.filter(cluster=cluster), ~Q(status=AttachmentStatus.GONE)),
    ):
        found = rows.aggregate(
            rows=Count("id"), present=Count("id", filter=present), last=Max("id")
        )
        fingerprint.append((found["rows"], found["present"], found["last"]))
    return tuple(fingerprint)


def _rogue_rows(listing: ClusterListing) -> dict[str, list[dict[str, str]]]:
    """node name -> the agent-looking pods on it that are not its agent, as stored on Node."""
    rows: dict[str, list[dict[str, str]]] = defaultdict(list)
    for rogue in listing.rogue_agents:
        rows[rogue.node].append(
            {"pod": rogue.key[:253], "pod_ip": rogue.pod_ip[:64], "reason": rogue.reason[:500]}
        )
    return rows


def _apply_nodes(
    cluster: Cluster, listing: ClusterListing, stats: SyncStats, readdressed: set[int]
) -> dict[str, Node]:
    """Write the Node rows; `readdressed` gets the ids of stored nodes whose InternalIPs or
    ExternalIPs changed."""
    existing = {n.name: n for n in Node.objects.filter(cluster=cluster)}
    endpoints = listing.agent_endpoints
    rogues = _rogue_rows(listing)
    to_create, to_update, update_fields = [], [], set()
    seen = set()
    for info in listing.nodes:
        seen.add(info.name)
        values = {
            "internal_ips": list(info.internal_ips),
            "external_ips": list(info.external_ips),
            "labels": dict(info.labels),
            "ready": bool(info.ready),
            "agent_url": endpoints.get(info.name, "")[:500],
            "rogue_agents": rogues.get(info.name, []),
            "in_cluster": True,
        }
        node = existing.get(info.name)
        if node is None:
            node = Node(cluster=cluster, name=info.name[:253], **values)
            to_create.append(node)
            existing[info.name] = node
            continue
        changed = changed_fields(node, values)
        if changed:
            to_update.append(node)
            update_fields.update(changed)
            if {"internal_ips", "external_ips"} & set(changed):
                readdressed.add(node.pk)
    gone = [n for name, n in existing.items() if name not in seen and n.in_cluster and n.pk]
    for node in gone:
        node.in_cluster = False
        to_update.append(node)
        update_fields.add("in_cluster")
    stats.node_rows += bulk_write(Node, to_create, to_update, update_fields)
    if any(node.pk is None for node in to_create):
        # bulk_create sets pks on PostgreSQL and SQLite >= 3.35; re-read where it did not.
        existing.update(
            {
                n.name: n
                for n in Node.objects.filter(cluster=cluster, name__in=[n.name for n in to_create])
            }
        )
    return existing


def _note_new_rogue_agents(
    nodes: dict[str, Node],
    listing: ClusterListing,
    before: dict[str, set],
    now: datetime,
    stats: SyncStats,
) -> None:
    """A pod newly seen posing as a node's agent (`before`: the ones already stored, by node):
    one history entry on the node, not one per sweep (clients.cluster logs it on every listing,
    the node page lists it for as long as it is there)."""
    for rogue in listing.rogue_agents:
        node = nodes.get(rogue.node)
        if node is None or node.pk is None or rogue.key in before.get(rogue.node, set()):
            continue
        HistoryEntry.objects.create(
            at=now,
            kind=HistoryKind.AGENT,
            node=node,
            message=f"pod {rogue.key} looks like an agent and is ignored: {rogue.reason}",
            data={"rogue_agent": rogue.key, "pod_ip": rogue.pod_ip},
        )
        stats.history += 1


def _apply_nads(cluster: Cluster, nads: list[NadInfo], now: datetime, stats: SyncStats) -> None:
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
        if row.uid and info.uid and row.uid != info.uid and row.origin == NadOrigin.PORTAL:
            # Deleted and made again by someone else: no longer the NAD the portal applied, so
            # no longer its team's (a team's NAD may hand the team's reserved NICs to pods).
            values.update(origin=NadOrigin.CLUSTER, team_id=None, applied_by_id=None)
        changed = changed_fields(row, values)
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
    stats.other_rows += bulk_write(NetworkAttachment, to_create, to_update, fields | {"updated_at"})


def _failures_by_pod(listing: ClusterListing) -> dict[tuple[str, str], str]:
    failures: dict[tuple[str, str], tuple[datetime | None, str]] = {}
    for ev in listing.sandbox_failures:
        key = (ev.namespace, ev.pod)
        current = failures.get(key)
        if current is None or (ev.last_seen and (current[0] is None or ev.last_seen > current[0])):
            failures[key] = (ev.last_seen, ev.message)
    return {k: v[1] for k, v in failures.items()}


def _apply_attachments(
    cluster: Cluster,
    listing: ClusterListing,
    nodes: dict[str, Node],
    now: datetime,
    stats: SyncStats,
) -> set[int]:
    """PodAttachment rows from the pods' Multus annotations. Returns ids of nodes whose claims
    changed (their verdicts must be recomputed)."""
    failures = _failures_by_pod(listing)
    # A device bound to vfio-pci that host-device took by pciBusID leaves no MAC and no
    # device-info in the network-status: the NAD's pciBusID says which device the pod holds.
    # Not for a NAD with a resourceName: the device plugin's deviceID replaces its pciBusID.
    nad_pci = {
        (info.namespace, info.name): sriov.config_pci_bus_id(info.config)
        for info in listing.nads
        if not info.resource_name
    }
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
                    "pci_address": ((st.pci_address or nad_pci.get((ns, name), "")).lower())[:16],
                    "status": AttachmentStatus.ATTACHED,
                    "error": "",
                }
        for idx, sel in enumerate(pod.networks, start=1):
            if (sel.namespace, sel.name) in status_by_nad:
                continue
            error = failures.get((pod.namespace, pod.name), "")
            # Multus writes a network-status entry only for a result with an interface in the
            # pod: host-device's DPDK mode (a vfio-pci function by pciBusID) returns none. A
            # running pod whose network-status Multus did write holds that NAD's device.
            taken = pod.phase == "Running" and bool(pod.network_status) and not error
            pci = nad_pci.get((sel.namespace, sel.name), "") if taken else ""
            if pci:
                status = AttachmentStatus.ATTACHED
            elif error:
                status = AttachmentStatus.FAILED
            else:
                status = AttachmentStatus.PENDING
            wanted[
                (pod.namespace, pod.name, sel.namespace, sel.name, sel.interface or f"net{idx}")
            ] = {
                "node": node,
                "pod_uid": pod.uid,
                "mac": (sel.mac or "").lower(),
                "pci_address": pci.lower()[:16],
                "status": status,
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
        old_node = row.node_id
        changed = changed_fields(row, values)
        if changed:
            to_update.append(row)
            fields.update(changed)
            if {"status", "mac", "pci_address", "node_id"} & set(changed):
                touched.update(n for n in (old_node, row.node_id) if n)
    for key, row in existing.items():
        if key not in wanted and row.status != AttachmentStatus.GONE:
            if row.status == AttachmentStatus.ATTACHED and row.node_id:
                touched.add(row.node_id)
            row.status = AttachmentStatus.GONE
            to_update.append(row)
            fields.add("status")
    stats.other_rows += bulk_write(PodAttachment, to_create, to_update, fields | {"updated_at"})
    _link_attachments_to_interfaces(cluster, touched)
    return touched


def _link_attachments_to_interfaces(cluster: Cluster, node_ids: set[int]) -> None:
    """Point attached PodAttachments at the host Interface with their MAC (host-device keeps
    the NIC's MAC, so MAC + node identify the device), else with their PCI address (a vfio
    device has no MAC in the network-status)."""
    if not node_ids:
        return
    rows = list(
        PodAttachment.objects.filter(cluster=cluster, node_id__in=node_ids).exclude(
            mac="", pci_address=""
        )
    )
    by_mac, by_pci = {}, {}
    for iface in Interface.objects.filter(node_id__in=node_ids).only(
        "id", "node_id", "mac", "permanent_mac", "pci_address"
    ):
        for mac in (iface.mac, iface.permanent_mac):
            if mac:
                by_mac[(iface.node_id, mac)] = iface.pk
        if iface.pci_address:
            by_pci[(iface.node_id, iface.pci_address)] = iface.pk
    changed = []
    for row in rows:
        iface_id = by_mac.get((row.node_id, row.mac)) or by_pci.get((row.node_id, row.pci_address))
        if iface_id and row.interface_id != iface_id:
            row.interface_id = iface_id
            changed.append(row)
    if changed:
        PodAttachment.objects.bulk_update(changed, ["interface"], batch_size=BATCH_SIZE)
