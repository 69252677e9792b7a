"""Pod diagnosis and stranded NICs: gather the facts (the cluster + the inventory), let the pure
rules in inventory/rules/diagnosis/ judge them.

- `diagnose(namespace=, name=, cluster=)`: why is this pod stuck in ContainerCreating? Reads the
  pod, its Events and the NADs it names from that cluster's Kubernetes API (live: the answer
  must match what `kubectl describe` shows now), and the interfaces of that cluster's nodes
  from the inventory.
- `diagnose_planned(namespace=, node=, networks=)`: the same rules for a pod that does not exist
  yet ("what would happen if I started it on that node?").
- `stranded()`: NICs that vanished with no pod claiming them, and orphans back on the host as
  netN, fleet-wide, each with the commands an operator runs on the node. The portal never
  changes a node.
- `pods_to_diagnose(query=)`: the pod picker, failing pods first, from the stored attachments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q
from django.utils import timezone

from inventory.choices import AttachmentStatus, OwnershipState
from inventory.clients.cluster import ClusterClient, ClusterError, NotFound
from inventory.models import Cluster, Interface, PodAttachment
from inventory.read import facts
from inventory.rules import diagnosis as rules
from inventory.rules import multus, nad, teams
from inventory.rules.diagnosis import Diagnosis
from inventory.services import cluster_clients

__all__ = [
    "Diagnosis",
    "PodRow",
    "StrandedNic",
    "diagnose",
    "diagnose_planned",
    "pods_to_diagnose",
    "stranded",
]


# --- diagnosis -----------------------------------------------------------------------------------


def diagnose(
    *,
    namespace: str,
    name: str,
    cluster: str = "",
    user: object = None,
    client: ClusterClient | None = None,
) -> Diagnosis:
    """Why pod namespace/name of `cluster` (a registry name; the default cluster for "") is (or
    is not) stuck: its pod, Events and NADs read through the registry's client for that cluster,
    its NICs from that cluster's inventory. ValidationError on `cluster` for a cluster nobody
    knows. `user` is accepted for the API's sake: every logged-in user may read a diagnosis, as
    they may read the inventory."""
    stored = facts.chosen_cluster(cluster)
    try:
        api = client or _client(stored)
        try:
            pod = api.get_pod(namespace, name)
        except NotFound:
            return rules.diagnose(
                rules.DiagnosisFacts(rules.PodFacts(namespace, name, found=False))
            )
        events = api.pod_events(namespace, name)
        pod_facts = rules.PodFacts(
            namespace=namespace,
            name=name,
            node=pod.node_name,
            phase=pod.phase or "Pending",
            networks=pod.networks,
            networks_error=pod.networks_error,
            network_status=pod.network_status,
            events=tuple(
                rules.EventFacts(e.reason, e.message, e.type, e.count, e.last_seen) for e in events
            ),
        )
        return rules.diagnose(_facts(api, stored, pod_facts))
    except ClusterError as exc:
        return _cluster_unavailable(namespace, name, exc, stored)


def diagnose_planned(
    *,
    namespace: str,
    node: str,
    networks: str,
    name: str = "(planned pod)",
    cluster: str = "",
    user: object = None,
    client: ClusterClient | None = None,
) -> Diagnosis:
    """The rules applied to a pod that is not created: `networks` is the annotation it would
    carry, `node` (of `cluster`) where it would run. Nothing is started."""
    stored = facts.chosen_cluster(cluster)
    try:
        selections = multus.parse_networks(networks, pod_namespace=namespace)
        networks_error = ""
    except multus.MultusAnnotationError as exc:
        selections, networks_error = (), str(exc)
    pod_facts = rules.PodFacts(
        namespace=namespace,
        name=name,
        node=node,
        phase="",
        networks=selections,
        networks_error=networks_error,
    )
    try:
        return rules.diagnose(_facts(client or _client(stored), stored, pod_facts))
    except ClusterError as exc:
        return _cluster_unavailable(namespace, name, exc, stored)


def _client(stored: Cluster | None) -> ClusterClient:
    """The process's client for the cluster (services.cluster_clients: shared with its sweeps,
    never closed here); the settings' one before the default cluster's first sweep."""
    if stored is None:
        return cluster_clients.settings_client()
    return cluster_clients.cluster_client(stored)


def _facts(
    cluster: ClusterClient, stored: Cluster | None, pod: rules.PodFacts
) -> rules.DiagnosisFacts:
    nodes = facts.cluster_nodes(stored)
    interfaces_by_node = facts.host_interfaces_by_node(nodes)
    plugins = facts.plugins_by_node(nodes)
    multus_version = facts.multus_version_for(stored)
    nads: dict[str, rules.NadFacts] = {}
    for selection in pod.networks:
        if selection.nad_key in nads:
            continue
        try:
            info = cluster.get_nad(selection.namespace, selection.name)
        except NotFound:
            nads[selection.nad_key] = rules.NadFacts(
                selection.namespace, selection.name, found=False
            )
            # The names that do exist there, for "did you mean": one listing, only on a miss.
            for other in cluster.list_nads():
                if other.namespace == selection.namespace:
                    nads.setdefault(
                        f"{other.namespace}/{other.name}",
                        rules.NadFacts(other.namespace, other.name, config=other.config),
                    )
            continue
        findings = nad.lint(
            namespace=info.namespace,
            name=info.name,
            config=info.config,
            annotations=info.annotations,
            plugins_by_node={pod.node: plugins[pod.node]} if pod.node in plugins else None,
            multus_version=multus_version,
        )
        nads[selection.nad_key] = rules.NadFacts(
            namespace=info.namespace,
            name=info.name,
            config=info.config,
            resource_name=info.resource_name,
            findings=tuple(findings),
            team=facts.nad_team(stored, info.namespace, info.name, info.uid),
        )
    return rules.DiagnosisFacts(
        pod=pod,
        nads=nads,
        interfaces_by_node=interfaces_by_node,
        plugin=plugins.get(pod.node),
        multus_version=multus_version,
        namespace_teams=teams.namespace_teams(pod.namespace, facts.team_namespaces()),
    )


def _cluster_unavailable(
    namespace: str, name: str, exc: ClusterError, stored: Cluster | None
) -> Diagnosis:
    where = f" of cluster {stored.name}" if stored is not None else ""
    return Diagnosis(
        code="CLUSTER_UNAVAILABLE",
        severity=rules.ERROR,
        title="The Kubernetes API did not answer",
        explanation=f"NICPortal could not read pod {namespace}/{name}{where}: {exc}",
        namespace=namespace,
        pod=name,
        fix=rules.Fix("Try again; if it persists, check the portal's kubeconfig and RBAC."),
    )


# --- stranded NICs -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StrandedNic:
    interface_id: int
    cluster: str
    node: str
    name: str  # as the host shows it now (an orphan's netN) or last showed it
    original_name: str  # what it should be called: the orphan's alias, else the name
    kind: str  # "orphan" | "missing" | "no_netdev"
    mac: str
    pci_address: str
    driver: str
    reason: str
    since: datetime  # when it became stranded (Interface.state_changed_at)
    stranded_seconds: int
    commands: tuple[str, ...] = field(default_factory=tuple)

    @property
    def label(self) -> str:
        return {
            "orphan": "orphan (renamed)",
            "missing": "missing (in a dead pod's namespace?)",
            "no_netdev": "PCI function without netdev",
        }[self.kind]


def stranded(*, now: datetime | None = None) -> list[StrandedNic]:
    """Every stranded NIC of every cluster, longest stranded first. Interfaces of nodes whose
    agent is silent are `unknown`, not missing, so they are never listed on a stale guess."""
    now = now or timezone.now()
    rows = (
        Interface.objects.filter(
            Q(state=OwnershipState.MISSING) | Q(orphan=True, present=True),
            node__in_cluster=True,
        )
        .exclude(state=OwnershipState.UNKNOWN)
        .select_related("node__cluster")
        .order_by("state_changed_at", "node__name", "name")
    )
    result = []
    for row in rows:
        if row.orphan and row.present:
            kind = "orphan"
        elif row.present and not row.has_netdev:
            kind = "no_netdev"
        else:
            kind = "missing"
        original = row.alias if kind == "orphan" and row.alias else row.name
        commands = rules.recovery_commands(
            name=row.name,
            original_name=original,
            orphan=kind == "orphan",
            mac=row.mac,
            pci_address=row.pci_address,
            driver=row.driver,
            has_netdev=kind != "no_netdev",
        )
        result.append(
            StrandedNic(
                interface_id=row.pk,
                cluster=row.node.cluster.name,
                node=row.node.name,
                name=row.name,
                original_name=original,
                kind=kind,
                mac=row.mac,
                pci_address=row.pci_address,
                driver=row.driver,
                reason=row.reason,
                since=row.state_changed_at,
                stranded_seconds=max(0, int((now - row.state_changed_at).total_seconds())),
                commands=commands,
            )
        )
    return result


# --- the pod picker ------------------------------------------------------------------------------


@dataclass
class PodRow:
    cluster: str
    namespace: str
    name: str
    node: str
    status: str  # the worst attachment status: failed > pending > gone > attached
    error: str  # the sandbox failure message, "" if none
    attachments: list[str] = field(default_factory=list)  # "ns/nad@ifname (status)"
    updated_at: datetime | None = None

    @property
    def failing(self) -> bool:
        return self.status in (AttachmentStatus.FAILED, AttachmentStatus.PENDING)


_STATUS_RANK = {
    AttachmentStatus.FAILED: 0,
    AttachmentStatus.PENDING: 1,
    AttachmentStatus.ATTACHED: 2,
    AttachmentStatus.GONE: 3,
}


def pods_to_diagnose(*, query: str = "", cluster: str = "", limit: int = 500) -> list[PodRow]:
    """Pods with Multus attachments of every cluster (of `cluster` only, when named), failing
    first (failed, then pending), then by name. `query` filters on "namespace/name"
    (case-insensitive substring). Pods whose attachments are all gone are left out: they no
    longer exist."""
    rows = (
        PodAttachment.objects.exclude(status=AttachmentStatus.GONE)
        .select_related("node", "cluster")
        .order_by("cluster__name", "namespace", "pod_name", "pod_interface")
    )
    if cluster:
        rows = rows.filter(cluster__name=cluster)
    if query:
        if "/" in query:
            namespace, _, name = query.partition("/")
            rows = rows.filter(namespace__icontains=namespace, pod_name__icontains=name)
        else:
            rows = rows.filter(Q(pod_name__icontains=query) | Q(namespace__icontains=query))
    pods: dict[tuple[str, str, str], PodRow] = {}
    for row in rows[: limit * 8]:
        key = (row.cluster.name, row.namespace, row.pod_name)
        pod = pods.get(key)
        if pod is None:
            pod = pods[key] = PodRow(
                row.cluster.name,
                row.namespace,
                row.pod_name,
                row.node.name if row.node else "",
                row.status,
                "",
            )
        if _STATUS_RANK.get(row.status, 9) < _STATUS_RANK.get(pod.status, 9):
            pod.status = row.status
        pod.error = pod.error or row.error
        pod.attachments.append(
            f"{row.nad_namespace}/{row.nad_name}@{row.pod_interface} ({row.status})"
        )
        if pod.updated_at is None or row.updated_at > pod.updated_at:
            pod.updated_at = row.updated_at
    ordered = sorted(
        pods.values(),
        key=lambda p: (_STATUS_RANK.get(p.status, 9), not p.error, p.namespace, p.name, p.cluster),
    )
    return ordered[:limit]
