"""The inventory as the pure rules see it: the one place where stored rows become rule inputs.

- ownership: Interface -> ownership.LinkFacts, Node -> ownership.NodeFacts, its attached pods ->
  ownership.PodClaim (with their namespace's teams and their NAD's team), its active
  reservations -> ownership.ReservationFacts (used by sync);
- teams: the namespaces each team owns (TeamNamespace), the team a NAD was applied for;
- NADs: Interface -> nad.DeviceFacts, Node.cni -> nad.PluginFacts (the NAD builder, the linter
  of cluster NADs);
- diagnosis: Interface -> diagnosis.HostInterface (what the diagnosis needs beyond DeviceFacts);
- the configured cluster, its nodes and its Multus version (the row's when known, else the
  deployment's setting).
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q, QuerySet

from inventory.choices import AttachmentStatus
from inventory.models import (
    Cluster,
    Interface,
    NetworkAttachment,
    Node,
    PodAttachment,
    Reservation,
    TeamNamespace,
)
from inventory.rules import diagnosis, nad, ownership, teams
from inventory.rules.nad.selection import DeviceValues

# --- the configured cluster ---------------------------------------------------------------------


def configured_cluster() -> Cluster | None:
    """The cluster this portal watches (settings.CLUSTER_NAME), None before its first sweep."""
    return Cluster.objects.filter(name=settings.CLUSTER_NAME).first()


def chosen_cluster(name: str = "", *, field: str = "cluster") -> Cluster | None:
    """The cluster a request names (the configured one for ""; None when that has not been swept
    yet). A name the registry does not hold is a ValidationError on `field` naming the known
    clusters: a typo must not quietly fall back to another cluster."""
    name = (name or "").strip()
    if not name:
        return configured_cluster()
    cluster = Cluster.objects.filter(name=name).first()
    if cluster is None:
        known = ", ".join(Cluster.objects.order_by("name").values_list("name", flat=True))
        raise ValidationError(
            {field: [f"No cluster named {name!r}; the clusters are: {known or 'none yet'}."]}
        )
    return cluster


def configured_nodes() -> QuerySet[Node]:
    """The nodes of the configured cluster that the Kubernetes API still lists."""
    return Node.objects.filter(cluster__name=settings.CLUSTER_NAME, in_cluster=True)


def configured_interfaces() -> QuerySet[Interface]:
    """The interfaces of the configured cluster's nodes that the Kubernetes API still lists."""
    return Interface.objects.filter(
        node__cluster__name=settings.CLUSTER_NAME, node__in_cluster=True
    )


def cluster_nodes(cluster: Cluster | None) -> list[Node]:
    """The nodes of `cluster` that the Kubernetes API still lists ([] for no cluster)."""
    return list(Node.objects.filter(cluster=cluster, in_cluster=True)) if cluster else []


def cluster_nodes_named(cluster: Cluster | None, name: str) -> bool:
    """Whether `cluster` has a node of that name that the Kubernetes API still lists."""
    return (
        cluster is not None
        and Node.objects.filter(cluster=cluster, name=name, in_cluster=True).exists()
    )


def multus_version_for(cluster: Cluster | None) -> str:
    """The cluster row's Multus version when it is known, else the deployment's setting."""
    if cluster is not None and cluster.multus_version:
        return cluster.multus_version
    return settings.MULTUS_VERSION


# --- ownership ----------------------------------------------------------------------------------


def link_facts(iface: Interface) -> ownership.LinkFacts:
    return _link_facts(iface.identity, functools.partial(getattr, iface), present=iface.present)


def link_facts_from_values(
    identity: str, values: Mapping[str, Any], *, present: bool
) -> ownership.LinkFacts:
    """The same facts from a row not stored yet ({Interface field: value}, as sync builds it
    from a snapshot): the first sight of a node is judged before its rows exist."""
    # A row not stored yet pins nothing: nothing of it was judged before.
    return _link_facts(
        identity,
        lambda name: values.get(name, ()) if name == "pinned" else values[name],
        present=present,
    )


def _link_facts(key: str, get: Callable[[str], Any], *, present: bool) -> ownership.LinkFacts:
    pf = get("pf")
    # Rows written before pf_pci_address existed name a netdev-less VF's PF by address in `pf`.
    legacy_pf_address = pf if ":" in pf and "." in pf else ""
    return ownership.LinkFacts(
        key=key,
        name=get("name"),
        kind=get("kind"),
        mac=get("mac"),
        permanent_mac=get("permanent_mac"),
        alias=get("alias"),
        altnames=tuple(get("altnames") or ()),
        master=get("master"),
        master_kind=get("master_kind"),
        addresses=tuple(
            f"{a['address']}/{a['prefixlen']}"
            for a in (get("addresses") or [])
            if isinstance(a, dict) and "address" in a and "prefixlen" in a
        ),
        default_route_v4=get("default_route_v4"),
        default_route_v6=get("default_route_v6"),
        driver=get("driver"),
        pci_address=get("pci_address"),
        pf_pci_address=get("pf_pci_address") or legacy_pf_address,
        pf_name=pf if pf != legacy_pf_address else "",
        vf_index=get("vf_index"),
        sriov_num_vfs=get("sriov_num_vfs") or 0,
        wireless=get("wireless"),
        has_netdev=get("has_netdev"),
        present=present,
        pinned=tuple(token for token in (get("pinned") or ()) if isinstance(token, str)),
    )


def node_facts(node: Node, *, answered_at: datetime | None = None) -> ownership.NodeFacts:
    """`answered_at`: the agent answered just now (its contact time is not read back)."""
    return ownership.NodeFacts(
        name=node.name,
        internal_ips=tuple(node.internal_ips or ()),
        external_ips=tuple(node.external_ips or ()),
        agent_fresh=not node.stale,
        agent_last_contact=answered_at or node.last_contact,
        veth_nics=str((node.labels or {}).get("nicportal.io/veth-nics", "")).lower() == "true",
        cluster_unreachable=cluster_unreachable_reason(node.cluster),
    )


def cluster_unreachable_reason(cluster: Cluster) -> str:
    """ "" or why none of the cluster's NICs can be judged: its API has not answered."""
    if cluster.unreachable_since is None:
        return ""
    since = cluster.unreachable_since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"the API of cluster {cluster.name} has not answered since {since}; last known facts shown"
    )


def pod_claims(node: Node) -> list[ownership.PodClaim]:
    return pod_claims_by_node([node]).get(node.pk, [])


def pod_claims_by_node(nodes: Iterable[Node]) -> dict[int, list[ownership.PodClaim]]:
    """The attached pods' claims of these nodes, by node id (a query for the claims, one for
    the teams' namespaces, one per cluster for the NADs' teams)."""
    by_id = {node.pk: node for node in nodes}
    rows = list(
        PodAttachment.objects.filter(
            node_id__in=list(by_id), status=AttachmentStatus.ATTACHED
        ).only(
            "node_id",
            "namespace",
            "pod_name",
            "nad_namespace",
            "nad_name",
            "pod_interface",
            "mac",
            "pci_address",
        )  # fmt: skip
    )
    if not rows:
        return {}
    patterns = team_namespaces()
    nad_teams: dict[tuple[int, str, str], str] = {}
    for cluster_id in {by_id[a.node_id].cluster_id for a in rows}:
        keys = {
            (a.nad_namespace, a.nad_name) for a in rows if by_id[a.node_id].cluster_id == cluster_id
        }
        for (namespace, name), team in nad_teams_for(cluster_id, keys).items():
            nad_teams[(cluster_id, namespace, name)] = team
    claims: dict[int, list[ownership.PodClaim]] = {}
    for a in rows:
        cluster_id = by_id[a.node_id].cluster_id
        claims.setdefault(a.node_id, []).append(
            ownership.PodClaim(
                namespace=a.namespace,
                pod=a.pod_name,
                nad=f"{a.nad_namespace}/{a.nad_name}",
                pod_interface=a.pod_interface,
                mac=a.mac,
                pci_address=a.pci_address,
                namespace_teams=teams.namespace_teams(a.namespace, patterns),
                nad_team=nad_teams.get((cluster_id, a.nad_namespace, a.nad_name), ""),
            )
        )
    return claims


# --- teams --------------------------------------------------------------------------------------


def team_namespaces() -> dict[str, list[str]]:
    """team name -> the namespace names and patterns it owns (a small table, read whole)."""
    result: dict[str, list[str]] = defaultdict(list)
    for team, pattern in TeamNamespace.objects.values_list("team__name", "pattern"):
        result[team].append(pattern)
    return dict(result)


def nad_teams_for(cluster_id: int, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(namespace, name) -> the team NICPortal applied that NAD for, for the NADs of `keys`
    that have one."""
    condition = Q()
    for namespace, name in set(keys):
        condition |= Q(namespace=namespace, name=name)
    if not condition:
        return {}
    rows = NetworkAttachment.objects.filter(
        condition, cluster_id=cluster_id, in_cluster=True, team__isnull=False
    ).values_list("namespace", "name", "team__name")
    return {(namespace, name): team for namespace, name, team in rows}


def reservation_facts(node: Node) -> dict[str, ownership.ReservationFacts]:
    """The node's active reservations by interface identity."""
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


def nad_team(cluster: Cluster | None, namespace: str, name: str, uid: str = "") -> str:
    """The team NICPortal applied NAD namespace/name for, "" when none (or when the NAD in the
    cluster, `uid`, is not the one the portal applied)."""
    if cluster is None:
        return ""
    row = (
        NetworkAttachment.objects.filter(
            cluster=cluster, namespace=namespace, name=name, team__isnull=False
        )
        .values_list("uid", "team__name")
        .first()
    )
    if row is None or (uid and row[0] and row[0] != uid):
        return ""
    return row[1]


# --- NADs ---------------------------------------------------------------------------------------


def device_kind(kind: str, wireless: bool) -> str:
    """The kind the NAD and diagnosis rules judge: they refuse wireless NICs by kind
    (host-device cannot move them, plugins #957)."""
    return "wireless" if wireless else (kind or "physical")


def plugin_facts(node: Node) -> nad.PluginFacts | None:
    """What the agent found of host-device on this node; None when it found none (or has not
    reported yet)."""
    host_device = (node.cni or {}).get("host_device") if isinstance(node.cni, dict) else None
    if not isinstance(host_device, dict):
        return None
    versions = host_device.get("supported_versions") or []
    return nad.PluginFacts(
        version=host_device.get("version") or None,
        supported_versions=tuple(str(v) for v in versions if isinstance(v, str)),
    )


def plugins_by_node(nodes: Iterable[Node]) -> dict[str, nad.PluginFacts]:
    return {n.name: p for n in nodes if (p := plugin_facts(n)) is not None}


def active_teams(interface_ids: Iterable[int]) -> dict[int, str]:
    """interface id -> the team of its active reservation."""
    rows = Reservation.objects.filter(
        interface_id__in=list(interface_ids), released_at__isnull=True
    ).values_list("interface_id", "team__name")
    return dict(rows)


# The Interface columns a DeviceFacts is made of, read as value tuples (see devices_by_node).
_DEVICE_COLUMNS = (
    "name",
    "mac",
    "pci_address",
    "kind",
    "wireless",
    "driver",
    "state",
    "reason",
    "holder",
    "has_netdev",
    "sriov_num_vfs",
    "pf_pci_address",
)


def _device(
    node: str,
    columns: tuple,
    *,
    reserved_team: str,
    plugin: nad.PluginFacts | None,
    pod_nad: str = "",
) -> nad.DeviceFacts:
    """A DeviceFacts from the values of _DEVICE_COLUMNS, in that order (anything after them is
    left alone)."""
    (name, mac, pci_address, kind, wireless, driver, state, reason, holder, has_netdev,
     sriov_num_vfs, pf_pci_address) = columns[:12]  # fmt: skip
    return nad.DeviceFacts(
        node=node,
        name=name,
        mac=mac,
        pci_address=pci_address,
        # The agent does not report sysfs device paths yet: no kernelpath selector offered.
        kernelpath="",
        kind=device_kind(kind, wireless),
        driver=driver,
        state=state,
        reason=reason,
        holder=holder,
        reserved_team=reserved_team,
        has_netdev=has_netdev,
        plugin=plugin,
        pod_nad=pod_nad,
        sriov_num_vfs=sriov_num_vfs or 0,
        pf_pci_address=pf_pci_address,
    )


# For readers that select these columns themselves (the admission webhook's one query).
DEVICE_COLUMNS = _DEVICE_COLUMNS


def device_from_values(
    node: str, values: tuple, *, reserved_team: str, plugin: nad.PluginFacts | None
) -> nad.DeviceFacts:
    """A DeviceFacts from the values of DEVICE_COLUMNS, in that order (anything after them is
    left alone)."""
    return _device(node, values, reserved_team=reserved_team, plugin=plugin)


def pod_nads(
    interface_ids: Iterable[int] | None = None, *, node_ids: Iterable[int] = ()
) -> dict[int, str]:
    """interface id -> the NAD ("ns/name") of the attached pod holding it, for these interfaces
    or the interfaces of these nodes."""
    rows = PodAttachment.objects.filter(status=AttachmentStatus.ATTACHED, interface__isnull=False)
    if interface_ids is not None:
        rows = rows.filter(interface_id__in=list(interface_ids))
    else:
        rows = rows.filter(interface__node_id__in=list(node_ids))
    return {
        interface_id: f"{namespace}/{name}"
        for interface_id, namespace, name in rows.values_list(
            "interface_id", "nad_namespace", "nad_name"
        )
    }


def device_facts(
    interface: Interface, *, reserved_team: str = "", plugin: nad.PluginFacts | None = None
) -> nad.DeviceFacts:
    columns = tuple(getattr(interface, column) for column in _DEVICE_COLUMNS)
    return _device(
        interface.node.name,
        columns,
        reserved_team=reserved_team,
        plugin=plugin,
        pod_nad=pod_nads([interface.pk]).get(interface.pk, "") if interface.pk else "",
    )


def devices_by_node(
    nodes: Iterable[Node] | None = None, *, only: DeviceValues | None = None
) -> dict[str, list[nad.DeviceFacts]]:
    """Every known interface of these nodes (all nodes of the configured cluster by default);
    with `only`, just those whose name, MAC or PCI address is one of its values (what the NADs
    being linted could select: rules/nad/selection.py). Every node has its entry, empty or not.

    Read as value tuples, not model instances: a sweep lints every NAD against the whole fleet
    (80,000 interfaces at 5,000 nodes), and instances with the node's JSON fields joined in cost
    seconds there."""
    if nodes is None:
        nodes = configured_nodes()
    by_id = {n.pk: n for n in nodes}
    plugins = {pk: plugin_facts(n) for pk, n in by_id.items()}
    reserved = dict(
        Reservation.objects.filter(
            interface__node_id__in=list(by_id), released_at__isnull=True
        ).values_list("interface_id", "team__name")
    )
    in_pods = pod_nads(node_ids=by_id)
    result: dict[str, list[nad.DeviceFacts]] = {n.name: [] for n in by_id.values()}
    rows = Interface.objects.filter(node_id__in=list(by_id))
    if only is not None:
        if not only:
            return result
        rows = rows.filter(
            Q(name__in=only.names) | Q(mac__in=only.macs) | Q(pci_address__in=only.pcis)
        )
    rows = rows.values_list(*_DEVICE_COLUMNS, "pk", "node_id")
    for row in rows.iterator(chunk_size=5000):
        pk, node_id = row[-2:]
        node_name = by_id[node_id].name
        result[node_name].append(
            _device(
                node_name,
                row,
                reserved_team=reserved.get(pk, ""),
                plugin=plugins.get(node_id),
                pod_nad=in_pods.get(pk, ""),
            )
        )
    return result


def selectors_elsewhere(
    interfaces: Iterable[Interface],
) -> dict[tuple[str, str], tuple[str, ...]]:
    """(selector, value) -> the other nodes of the same cluster with an interface that selector
    would match: by name ("device"), MAC ("hwaddr") or PCI address ("pciBusID"), for the names,
    MACs and PCI addresses of `interfaces` (the NAD builder's chosen devices; their own nodes
    are not "other")."""
    interfaces = list(interfaces)
    if not interfaces:
        return {}
    names = {i.name for i in interfaces if i.name}
    macs = {i.mac.lower() for i in interfaces if i.mac}
    pcis = {i.pci_address.lower() for i in interfaces if i.pci_address}
    rows = (
        Interface.objects.filter(
            node__cluster_id__in={i.node.cluster_id for i in interfaces}, node__in_cluster=True
        )
        .exclude(node_id__in={i.node_id for i in interfaces})
        .filter(Q(name__in=names) | Q(mac__in=macs) | Q(pci_address__in=pcis))
        .values_list("name", "mac", "pci_address", "node__name")
    )
    found: dict[tuple[str, str], set[str]] = defaultdict(set)
    for name, mac, pci, node in rows:
        if name in names:
            found["device", name].add(node)
        if mac and mac.lower() in macs:
            found["hwaddr", mac.lower()].add(node)
        if pci and pci.lower() in pcis:
            found["pciBusID", pci.lower()].add(node)
    return {key: tuple(sorted(nodes)) for key, nodes in found.items()}


# --- diagnosis ----------------------------------------------------------------------------------


def host_interfaces_by_node(nodes: list[Node]) -> dict[str, list[diagnosis.HostInterface]]:
    """Every interface of these nodes as the diagnosis rules see it."""
    rows = list(Interface.objects.filter(node__in=nodes).select_related("node"))
    teams = active_teams(i.pk for i in rows)
    result: dict[str, list[diagnosis.HostInterface]] = {n.name: [] for n in nodes}
    for row in rows:
        result[row.node.name].append(
            diagnosis.HostInterface(
                node=row.node.name,
                name=row.name,
                mac=row.mac,
                pci_address=row.pci_address,
                alias=row.alias,
                kind=device_kind(row.kind, row.wireless),
                driver=row.driver,
                state=row.state,
                reason=row.reason,
                holder=row.holder,
                present=row.present,
                has_netdev=row.has_netdev,
                orphan=row.orphan,
                reserved_team=teams.get(row.pk, ""),
            )
        )
    return result
