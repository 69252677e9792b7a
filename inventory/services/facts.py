"""The inventory as the pure rules see it: Interface rows -> nad.DeviceFacts, Node.cni ->
nad.PluginFacts. Used by the NAD builder, the linter of cluster NADs and diagnosis."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from django.conf import settings

from inventory import nad
from inventory.models import Interface, Node, Reservation


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
    """Every known interface of these nodes (all nodes of the configured cluster by default)."""
    if nodes is None:
        nodes = Node.objects.filter(cluster__name=settings.CLUSTER_NAME, in_cluster=True)
    nodes = list(nodes)
    plugins = {n.pk: plugin_facts(n) for n in nodes}
    interfaces = list(Interface.objects.filter(node__in=nodes).select_related("node"))
    teams = active_teams(i.pk for i in interfaces)
    result: dict[str, list[nad.DeviceFacts]] = defaultdict(list)
    for node in nodes:
        result[node.name]  # nodes without interfaces still count: "absent on node X"
    for iface in interfaces:
        result[iface.node.name].append(
            device_facts(
                iface, reserved_team=teams.get(iface.pk, ""), plugin=plugins.get(iface.node_id)
            )
        )
    return dict(result)


def plugins_by_node(nodes: Iterable[Node]) -> dict[str, nad.PluginFacts]:
    return {n.name: p for n in nodes if (p := plugin_facts(n)) is not None}
