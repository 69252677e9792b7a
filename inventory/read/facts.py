"""The inventory as the pure rules see it: Interface rows -> nad.DeviceFacts, Node.cni ->
nad.PluginFacts. Used by the NAD builder, the linter of cluster NADs and diagnosis."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings

from inventory.models import Interface, Node, Reservation
from inventory.rules import nad


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


def device_facts(
    interface: Interface, *, reserved_team: str = "", plugin: nad.PluginFacts | None = None
) -> nad.DeviceFacts:
    return nad.DeviceFacts(
        node=interface.node.name,
        name=interface.name,
        mac=interface.mac,
        pci_address=interface.pci_address,
        # The agent does not report sysfs device paths yet: no kernelpath selector offered.
        kernelpath="",
        # The rules refuse wireless NICs by kind (host-device cannot move them, plugins #957).
        kind="wireless" if interface.wireless else (interface.kind or "physical"),
        driver=interface.driver,
        state=interface.state,
        reason=interface.reason,
        holder=interface.holder,
        reserved_team=reserved_team,
        has_netdev=interface.has_netdev,
        plugin=plugin,
    )


def active_teams(interface_ids: Iterable[int]) -> dict[int, str]:
    rows = Reservation.objects.filter(
        interface_id__in=list(interface_ids), released_at__isnull=True
    ).values_list("interface_id", "team__name")
    return dict(rows)


def devices_by_node(nodes: Iterable[Node] | None = None) -> dict[str, list[nad.DeviceFacts]]:
    """Every known interface of these nodes (all nodes of the configured cluster by default).

    Read as value tuples, not model instances: a sweep lints every NAD against the whole fleet
    (80,000 interfaces at 5,000 nodes), and instances with the node's JSON fields joined in cost
    seconds there."""
    if nodes is None:
        nodes = Node.objects.filter(cluster__name=settings.CLUSTER_NAME, in_cluster=True)
    by_id = {n.pk: n for n in nodes}
    plugins = {pk: plugin_facts(n) for pk, n in by_id.items()}
    teams = dict(
        Reservation.objects.filter(
            interface__node_id__in=list(by_id), released_at__isnull=True
        ).values_list("interface_id", "team__name")
    )
    result: dict[str, list[nad.DeviceFacts]] = {n.name: [] for n in by_id.values()}
    rows = Interface.objects.filter(node_id__in=list(by_id)).values_list(
        "pk",
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
    )
    for (
        pk,
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
    ) in rows.iterator(chunk_size=5000):
        node_name = by_id[node_id].name
        result[node_name].append(
            nad.DeviceFacts(
                node=node_name,
                name=name,
                mac=mac,
                pci_address=pci,
                kernelpath="",
                kind="wireless" if wireless else (kind or "physical"),
                driver=driver,
                state=state,
                reason=reason,
                holder=holder,
                reserved_team=teams.get(pk, ""),
                has_netdev=netdev,
                plugin=plugins.get(node_id),
            )
        )
    return result


def plugins_by_node(nodes: Iterable[Node]) -> dict[str, nad.PluginFacts]:
    return {n.name: p for n in nodes if (p := plugin_facts(n)) is not None}
