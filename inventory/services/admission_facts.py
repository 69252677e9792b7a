"""What the admission webhook reads: the read side of inventory/services/admission.py.

Two speeds, so that a review costs at most one database query:

- **The index, in memory**: the configured cluster's nodes (name, labels, host-device facts),
  its NADs (with the device each selects) and the team namespaces. These change at the pace of
  the sweep (NADs and nodes come from the cluster listing every poll interval) or of staff
  edits, so each server process keeps one copy and rebuilds it in a background thread once it
  is `WEBHOOK_INDEX_MAX_AGE` old (stale-while-revalidate: only the very first review waits for
  it). Three queries per rebuild, none per review.
- **Ownership, per review**: the state, holder and active reservation of the interfaces a
  request can touch, in ONE indexed query (`devices`): rows of the candidate nodes (node_id)
  whose name, MAC or PCI address is the one selected (indexes on each). A reservation made a
  second ago is seen by the next review.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import OuterRef, Q, Subquery

from inventory import nad
from inventory.admission.decide import DeviceSelector, is_host_device, nad_selector
from inventory.models import Cluster, Interface, NetworkAttachment, Node, Reservation, TeamNamespace
from inventory.services.facts import plugin_facts
from inventory.services.nads import multus_version_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class NodeEntry:
    id: int
    name: str
    labels: Mapping[str, str]
    plugin: nad.PluginFacts | None


@dataclass(frozen=True, slots=True)
class NadEntry:
    namespace: str
    name: str
    host_device: bool
    selector: DeviceSelector | None


@dataclass(frozen=True, slots=True)
class Index:
    cluster: str
    multus_version: str
    nodes: Mapping[str, NodeEntry] = field(default_factory=dict)
    nads: Mapping[str, NadEntry] = field(default_factory=dict)  # "ns/name"
    team_namespaces: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    loaded_at: float = 0.0  # time.monotonic()

    def plugins(self) -> dict[str, nad.PluginFacts]:
        return {n.name: n.plugin for n in self.nodes.values() if n.plugin is not None}


def load_index() -> Index:
    """Read the index from the database (three queries)."""
    cluster = Cluster.objects.filter(name=settings.CLUSTER_NAME).first()
    teams: dict[str, list[str]] = {}
    for team, pattern in TeamNamespace.objects.values_list("team__name", "pattern"):
        teams.setdefault(team, []).append(pattern)
    if cluster is None:
        return Index(
            cluster=settings.CLUSTER_NAME,
            multus_version=multus_version_for(None),
            team_namespaces={t: tuple(p) for t, p in teams.items()},
            loaded_at=time.monotonic(),
        )
    nodes = {}
    for node in Node.objects.filter(cluster=cluster, in_cluster=True).only(
        "id", "name", "labels", "cni"
    ):
        labels = node.labels if isinstance(node.labels, dict) else {}
        nodes[node.name] = NodeEntry(
            node.pk, node.name, {str(k): str(v) for k, v in labels.items()}, plugin_facts(node)
        )
    nads = {}
    for namespace, name, config, notes in NetworkAttachment.objects.filter(
        cluster=cluster, in_cluster=True
    ).values_list("namespace", "name", "config", "annotations"):
        notes = notes if isinstance(notes, dict) else {}
        nads[f"{namespace}/{name}"] = NadEntry(
            namespace, name, is_host_device(config), nad_selector(config, notes)
        )
    return Index(
        cluster=cluster.name,
        multus_version=multus_version_for(cluster),
        nodes=nodes,
        nads=nads,
        team_namespaces={t: tuple(p) for t, p in teams.items()},
        loaded_at=time.monotonic(),
    )


class IndexHolder:
    """One Index per process, rebuilt in a background thread when it is older than `max_age`.
    Readers always get a complete Index (the reference is swapped, never mutated)."""

    def __init__(self) -> None:
        self._index: Index | None = None
        self._lock = threading.Lock()
        self._refreshing = False
        self.background = True

    def get(self) -> Index:
        index = self._index
        if index is None:
            with self._lock:
                if self._index is None:
                    self._index = load_index()
                return self._index
        if time.monotonic() - index.loaded_at > settings.WEBHOOK_INDEX_MAX_AGE:
            if self.background:
                self._refresh_in_background()
            else:
                self._index = index = load_index()
        return index

    def reload(self) -> Index:
        self._index = load_index()
        return self._index

    def clear(self) -> None:
        self._index = None

    def _refresh_in_background(self) -> None:
        with self._lock:
            if self._refreshing:
                return
            self._refreshing = True
        threading.Thread(target=self._refresh, name="admission-index", daemon=True).start()

    def _refresh(self) -> None:
        try:
            close_old_connections()
            self._index = load_index()
        except Exception:  # noqa: BLE001 - keep serving the last index; the next review retries
            log.exception("admission index refresh failed")
        finally:
            connection.close()  # this thread's own connection
            with self._lock:
                self._refreshing = False


INDEX = IndexHolder()


def devices(
    index: Index,
    *,
    selectors: Iterable[DeviceSelector],
    nodes: Iterable[str] | None = None,
) -> dict[str, list[nad.DeviceFacts]]:
    """The interfaces that any of `selectors` picks, on `nodes` (every node of the index when
    None), with their ownership and active reservation: ONE query. Only nodes of the index are
    returned (a node removed from the cluster since is not a candidate)."""
    match = Q()
    by_kind: dict[str, set[str]] = {}
    for selector in selectors:
        by_kind.setdefault(selector.selector, set()).add(selector.value)
    if by_kind.get("device"):
        match |= Q(name__in=sorted(by_kind["device"]))
    if by_kind.get("hwaddr"):
        match |= Q(mac__in=sorted(by_kind["hwaddr"]))
    if by_kind.get("pciBusID"):
        match |= Q(pci_address__in=sorted(by_kind["pciBusID"]))
    if not match or not index.nodes:
        return {}
    by_id = {n.id: n for n in index.nodes.values()}
    if nodes is not None:
        wanted = [index.nodes[name].id for name in nodes if name in index.nodes]
        if not wanted:
            return {}
        scope = Q(node_id__in=wanted)
    else:
        scope = Q(node__cluster__name=index.cluster, node__in_cluster=True)
    team = Reservation.objects.filter(interface=OuterRef("pk"), released_at__isnull=True).values(
        "team__name"
    )[:1]
    rows = (
        Interface.objects.filter(scope, match)
        .annotate(team=Subquery(team))
        .values_list(
            "node_id",
            "name",
            "mac",
            "pci_address",
            "wireless",
            "kind",
            "driver",
            "state",
            "reason",
            "holder",
            "has_netdev",
            "team",
        )
        .order_by()
    )
    result: dict[str, list[nad.DeviceFacts]] = {}
    for (
        node_id,
        name,
        mac,
        pci,
        wireless,
        kind,
        driver,
        state,
        reason,
        holder,
        netdev,
        owner,
    ) in rows:
        node = by_id.get(node_id)
        if node is None:
            continue
        result.setdefault(node.name, []).append(
            nad.DeviceFacts(
                node=node.name,
                name=name,
                mac=mac,
                pci_address=pci,
                kind="wireless" if wireless else (kind or "physical"),
                driver=driver,
                state=state,
                reason=reason,
                holder=holder,
                reserved_team=owner or "",
                has_netdev=netdev,
                plugin=node.plugin,
            )
        )
    return result
