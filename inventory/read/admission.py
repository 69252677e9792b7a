"""What the admission webhook reads: the read side of inventory/services/admission.py.

Two speeds, so that a review costs at most one database query:

- **The index, in memory**, one per cluster (the webhook path names it: docs/WEBHOOK.md): that
  cluster's nodes (name, labels, host-device facts),
  its NADs (with the device each selects) and the team namespaces. These change at the pace of
  the sweep (NADs and nodes come from the cluster listing every poll interval) or of staff
  edits, so each server process keeps one copy and rebuilds it in a background thread once it
  is `WEBHOOK_INDEX_MAX_AGE` old (stale-while-revalidate: only the very first review waits for
  it). Three queries per rebuild, none per review.
- **Ownership, per review**: the state, holder and active reservation of the interfaces a
  request can touch, in ONE indexed query (`devices`): rows of the candidate nodes (node_id)
  whose name, MAC or PCI address is the one selected (indexes on each). A reservation made a
  second ago is seen by the next review.
- **Fleet-wide device classes, remembered until a commit** (`device_classes`, read/classes.py):
  a fleet-wide review reads the selected device on every node, so its answer (and the rows it
  was grouped from) is kept per index and selector until PostgreSQL notifies a commit that
  changed an interface, a node, a reservation or a team (read/changes.py, migrations 0015 and
  0018); the next review re-reads only the rows the notification names and groups again. A
  change is seen by every review that starts after its commit's notification reaches the
  process (a fraction of a millisecond to a few milliseconds:
  tests/integration/test_admission_class_cache.py). Without the listener (SQLite, the listener
  reconnecting or down, a review inside a transaction, the setting WEBHOOK_CLASS_CACHE off)
  every review reads the database.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import close_old_connections, connection

from inventory.models import Cluster, Interface, NetworkAttachment, Node, Reservation
from inventory.read import classes, facts
from inventory.read.classes import device_classes  # noqa: F401 - the webhook reads through here
from inventory.rules import nad
from inventory.rules.admission.decide import (
    DeviceSelector,
    is_host_device,
    nad_selector,
)
from inventory.rules.admission.placement import Placement
from inventory.rules.nad.checks import explicit_cni_version_findings

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
    team: str = ""  # the team NICPortal applied it for (its pods in a teamless namespace are its)


@dataclass(frozen=True)
class Index:
    cluster: str
    multus_version: str
    cluster_id: int | None = None
    nodes: Mapping[str, NodeEntry] = field(default_factory=dict)
    plugins: Mapping[str, nad.PluginFacts] = field(default_factory=dict)  # by node name
    nads: Mapping[str, NadEntry] = field(default_factory=dict)  # "ns/name"
    team_namespaces: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    loaded_at: float = 0.0  # time.monotonic()
    # Where a fleet-wide pod may run, by placement (a Deployment's pods share one): computed
    # once per index. A plain dict in a frozen Index: each entry is written whole, and two
    # threads computing the same one store the same value.
    placements: dict = field(default_factory=dict, compare=False)

    versions: dict = field(default_factory=dict, compare=False)  # cniVersion -> findings
    # Fleet-wide device classes read under this index (read/classes.py): (selector kind,
    # value, nodes or None) -> classes.Entry (generation, classes); their rows are kept per
    # cluster in read/classes.py.
    classes: dict = field(default_factory=dict, compare=False)

    @functools.cached_property
    def by_id(self) -> Mapping[int, NodeEntry]:
        return {n.id: n for n in self.nodes.values()}

    @functools.cached_property
    def names_by_id(self) -> Mapping[int, str]:
        return {n.id: n.name for n in self.nodes.values()}

    def version_findings(self, version: str) -> list[nad.Finding]:
        """What the linter says of `version` on every node's plugin and Multus (a NAD that may
        land on every node): computed once per version and index, from the index's own facts."""
        found = self.versions.get(version)
        if found is None:
            found = explicit_cni_version_findings(version, dict(self.plugins), self.multus_version)
            if len(self.versions) < MEMO_ENTRIES:
                self.versions[version] = found
        return list(found)


class UnknownCluster(LookupError):
    """A webhook path names a cluster the registry does not hold."""


def load_index(cluster_name: str = "") -> Index:
    """Read the index of a cluster (a registry name; the default cluster for "") from the
    database (three queries). UnknownCluster for a name the registry does not hold."""
    if cluster_name:
        cluster = Cluster.objects.filter(name=cluster_name).first()
        if cluster is None:
            raise UnknownCluster(f"no cluster named {cluster_name!r} is registered in NICPortal")
    else:
        cluster = facts.configured_cluster()
    teams = facts.team_namespaces()
    if cluster is None:
        return Index(
            cluster=settings.CLUSTER_NAME,
            multus_version=facts.multus_version_for(None),
            team_namespaces={t: tuple(p) for t, p in teams.items()},
            loaded_at=time.monotonic(),
        )
    nodes = {}
    # In code-point order of their names, as Python sorts them (and as device_classes() orders
    # its rows): the order in which a fleet-wide review lists nodes.
    for node in sorted(
        Node.objects.filter(cluster=cluster, in_cluster=True).only("id", "name", "labels", "cni"),
        key=lambda n: n.name,
    ):
        labels = node.labels if isinstance(node.labels, dict) else {}
        nodes[node.name] = NodeEntry(
            node.pk,
            node.name,
            {str(k): str(v) for k, v in labels.items()},
            facts.plugin_facts(node),
        )
    nads = {}
    for namespace, name, config, notes, team in NetworkAttachment.objects.filter(
        cluster=cluster, in_cluster=True
    ).values_list("namespace", "name", "config", "annotations", "team__name"):
        notes = notes if isinstance(notes, dict) else {}
        nads[f"{namespace}/{name}"] = NadEntry(
            namespace, name, is_host_device(config), nad_selector(config, notes), team or ""
        )
    return Index(
        cluster=cluster.name,
        multus_version=facts.multus_version_for(cluster),
        cluster_id=cluster.pk,
        nodes=nodes,
        plugins={n.name: n.plugin for n in nodes.values() if n.plugin is not None},
        nads=nads,
        team_namespaces={t: tuple(p) for t, p in teams.items()},
        loaded_at=time.monotonic(),
    )


class IndexHolder:
    """One Index per cluster per process, rebuilt in a background thread when it is older than
    WEBHOOK_INDEX_MAX_AGE seconds (0: read for every review, three more queries each). Readers
    always get a complete Index (the reference is swapped, never mutated)."""

    def __init__(self) -> None:
        self._indexes: dict[str, Index] = {}  # by the cluster name a review asked for
        self._lock = threading.Lock()
        self._refreshing: set[str] = set()
        self.background = True

    def get(self, cluster: str = "") -> Index:
        """The index of `cluster` (the default cluster for "")."""
        if settings.WEBHOOK_INDEX_MAX_AGE == 0:
            return load_index(cluster)  # no cache at all: small clusters and end-to-end tests
        index = self._indexes.get(cluster)
        if index is None:
            with self._lock:
                if cluster not in self._indexes:
                    self._indexes[cluster] = load_index(cluster)
                return self._indexes[cluster]
        if time.monotonic() - index.loaded_at > settings.WEBHOOK_INDEX_MAX_AGE:
            if self.background:
                self._refresh_in_background(cluster)
            else:
                self._indexes[cluster] = index = load_index(cluster)
        return index

    def reload(self, cluster: str = "") -> Index:
        self._indexes[cluster] = load_index(cluster)
        return self._indexes[cluster]

    def clear(self) -> None:
        """Forget every index, and the rows of fleet-wide answers (read/classes.py)."""
        self._indexes = {}
        classes.forget()

    def _refresh_in_background(self, cluster: str) -> None:
        with self._lock:
            if cluster in self._refreshing:
                return
            self._refreshing.add(cluster)
        threading.Thread(
            target=self._refresh, args=(cluster,), name="admission-index", daemon=True
        ).start()

    def _refresh(self, cluster: str) -> None:
        try:
            close_old_connections()
            self._indexes[cluster] = load_index(cluster)
        except Exception:
            log.exception("admission index refresh failed cluster=%s", cluster or "-")
        finally:
            connection.close()  # this thread's own connection
            with self._lock:
                self._refreshing.discard(cluster)


INDEX = IndexHolder()


def devices(
    index: Index,
    *,
    selectors: Iterable[DeviceSelector],
    nodes: Iterable[str] | None = None,
) -> dict[str, list[nad.DeviceFacts]]:
    """The interfaces that any of `selectors` picks, on `nodes` (every node of the index when
    None), with their ownership and active reservation: ONE query. Only nodes of the index are
    returned (a node removed from the cluster since is not a candidate).

    Plain SQL rather than the ORM: this runs for every pod creation in the cluster, and
    compiling the equivalent queryset cost more than executing it (bench/webhook.py). The plan
    is an index scan on (node_id, name), mac or pci_address, and the reservation subquery uses
    the partial unique index of active reservations."""
    by_kind: dict[str, set[str]] = {}
    for selector in selectors:
        by_kind.setdefault(selector.selector, set()).add(selector.value)
    matches, params = [], []
    for kind, column in classes.SELECTOR_COLUMNS.items():
        values = sorted(by_kind.get(kind, ()))
        if values:
            matches.append(f"i.{column} IN ({', '.join(['%s'] * len(values))})")
            params += values
    if not matches or not index.nodes:
        return {}
    by_id = {n.id: n for n in index.nodes.values()}
    if nodes is not None:
        wanted = sorted({index.nodes[name].id for name in nodes if name in index.nodes})
        if not wanted:
            return {}
        scope = f"i.node_id IN ({', '.join(['%s'] * len(wanted))})"
        params = [*wanted, *params]
    else:
        scope = _CLUSTER_NODES
        params = [index.cluster_id, *params]
    sql = f"{_SELECT} WHERE {scope} AND ({' OR '.join(matches)})"
    result: dict[str, list[nad.DeviceFacts]] = {}
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    for row in rows:
        node_id, team = row[-2:]
        node = by_id.get(node_id)
        if node is None:
            continue
        result.setdefault(node.name, []).append(
            facts.device_from_values(node.name, row, reserved_team=team or "", plugin=node.plugin)
        )
    return result


_INTERFACE = Interface._meta.db_table
_NODE = Node._meta.db_table
_RESERVATION = Reservation._meta.db_table
_GROUP = Group._meta.db_table
# Only table names are interpolated into these (and, in devices(), %s placeholders): every
# value is a query parameter.
_CLUSTER_NODES = (
    f"i.node_id IN (SELECT n.id FROM {_NODE} n "  # noqa: S608
    "WHERE n.cluster_id = %s AND n.in_cluster)"
)
_COLUMNS = ", ".join(f"i.{column}" for column in facts.DEVICE_COLUMNS)
_SELECT = (
    f"SELECT {_COLUMNS}, i.node_id,"  # noqa: S608
    f" (SELECT g.name FROM {_RESERVATION} r JOIN {_GROUP} g ON g.id = r.team_id"
    "   WHERE r.interface_id = i.id AND r.released_at IS NULL LIMIT 1)"
    f" FROM {_INTERFACE} i"
)


# --- fleet-wide reviews (their device classes: read/classes.py) ---------------------------


def candidates(index: Index, placement: Placement) -> tuple[str, ...]:
    """The nodes of the index a pod with this placement may run on, in name order; computed
    once per placement and index."""
    if not placement.restricted:
        return tuple(index.nodes)
    found = index.placements.get(placement)
    if found is None:
        found = tuple(n.name for n in index.nodes.values() if placement.matches(n.name, n.labels))
        if len(index.placements) < MEMO_ENTRIES:
            index.placements[placement] = found
    return found


# Placements and cniVersions remembered per index (a bound: pods are made up by their users).
MEMO_ENTRIES = 256
