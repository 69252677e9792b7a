"""Pod diagnosis and stranded NICs: gather the facts (the cluster + the inventory), let the pure
rules in inventory/rules/diagnosis/ judge them.

- `diagnose(namespace=, name=)`: why is this pod stuck in ContainerCreating? Reads the pod, its
  Events and the NADs it names from the Kubernetes API (live: the answer must match what
  `kubectl describe` shows now), and the interfaces of every node from the inventory.
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

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from inventory.choices import AttachmentStatus, OwnershipState
from inventory.clients.cluster import ClusterClient, ClusterError, NotFound
from inventory.models import Interface, PodAttachment
from inventory.read import facts
from inventory.rules import diagnosis as rules
from inventory.rules import multus, nad, teams
from inventory.rules.diagnosis import Diagnosis

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
    *, namespace: str, name: str, user: object = None, client: ClusterClient | None = None
) -> Diagnosis:
    """Why pod namespace/name is (or is not) stuck. `user` is accepted for the API's sake: every
    logged-in user may read a diagnosis, as they may read the inventory."""
    try:
        with _ClientScope(client) as cluster:
            try:
                pod = cluster.get_pod(namespace, name)
            except NotFound:
                return rules.diagnose(
                    rules.DiagnosisFacts(rules.PodFacts(namespace, name, found=False))
                )
            events = cluster.pod_events(namespace, name)
            pod_facts = rules.PodFacts(
                namespace=namespace,
                name=name,
                node=pod.node_name,
                phase=pod.phase or "Pending",
                networks=pod.networks,
                networks_error=pod.networks_error,
                network_status=pod.network_status,
                events=tuple(
                    rules.EventFacts(e.reason, e.message, e.type, e.count, e.last_seen)
                    for e in events
                ),
            )
            return rules.diagnose(_facts(cluster, pod_facts))
    except ClusterError as exc:
        return _cluster_unavailable(namespace, name, exc)


def diagnose_planned(
    *,
    namespace: str,
    node: str,
    networks: str,
    name: str = "(planned pod)",
    user: object = None,
    client: ClusterClient | None = None,
) -> Diagnosis:
    """The rules applied to a pod that is not created: `networks` is the annotation it would
    carry, `node` where it would run. Nothing is started."""
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
        with _ClientScope(client) as cluster:
            return rules.diagnose(_facts(cluster, pod_facts))
    except ClusterError as exc:
        return _cluster_unavailable(namespace, name, exc)


class _ClientScope:
    """The given client (left open), or one from the settings (closed after use)."""

    def __init__(self, client: ClusterClient | None) -> None:
        self.given = client
        self.made: ClusterClient | None = None

    def __enter__(self) -> ClusterClient:
        if self.given is not None:
            return self.given
        self.made = ClusterClient.from_settings()
        return self.made

    def __exit__(self, *exc_info: object) -> None:
        if self.made is not None:
            self.made.close()


def _facts(cluster: ClusterClient, pod: rules.PodFacts) -> rules.DiagnosisFacts:
    stored = facts.configured_cluster()
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


def _cluster_unavailable(namespace: str, name: str, exc: ClusterError) -> Diagnosis:
    return Diagnosis(
        code="CLUSTER_UNAVAILABLE",
        severity=rules.ERROR,
        title="The Kubernetes API did not answer",
        explanation=f"NICPortal could not read pod {namespace}/{name}: {exc}",
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


def pods_to_diagnose(*, query: str = "", limit: int = 500) -> list[PodRow]:
    """Pods with Multus attachments, failing first (failed, then pending), then by name.
    `query` filters on "namespace/name" (case-insensitive substring). Pods whose attachments are
    all gone are left out: they no longer exist."""
    rows = (
        PodAttachment.objects.filter(cluster__name=settings.CLUSTER_NAME)
        .exclude(status=AttachmentStatus.GONE)
        .select_related("node")
        .order_by("namespace", "pod_name", "pod_interface")
    )
    if query:
        if "/" in query:
            namespace, _, name = query.partition("/")
            rows = rows.filter(namespace__icontains=namespace, pod_name__icontains=name)
        else:
            rows = rows.filter(Q(pod_name__icontains=query) | Q(namespace__icontains=query))
    pods: dict[tuple[str, str], PodRow] = {}
    for row in rows[: limit * 8]:
        key = (row.namespace, row.pod_name)
        pod = pods.get(key)
        if pod is None:
            pod = pods[key] = PodRow(
                row.namespace, row.pod_name, row.node.name if row.node else "", row.status, ""
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
        key=lambda p: (_STATUS_RANK.get(p.status, 9), not p.error, p.namespace, p.name),
    )
    return ordered[:limit]
