"""The node view: one node's NICs grouped by who owns them, its agent's health and its CNI."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.views.generic import DetailView

from inventory.choices import AttachmentStatus, OwnershipState
from inventory.models import Interface, Node, PodAttachment
from inventory.queries import active_reservations, cached_contacts
from inventory.rules import crosscheck, sriov
from inventory.web import diagrams
from inventory.web.views.common import (
    LiveMixin,
    PageMixin,
    digest,
    history_version,
    stop_polling,
)

# The order a person reads a node in: what the node and the CNI use, what is bonded or bridged,
# what pods hold, what teams hold, what is free, then the rest.
GROUPS: list[tuple[str, str, tuple[str, ...]]] = [
    ("system", "Used by the node", (OwnershipState.SYSTEM,)),
    ("cni", "Primary CNI and kube infrastructure", (OwnershipState.CNI,)),
    ("enslaved", "Bond, team and bridge members", (OwnershipState.ENSLAVED,)),
    ("pod", "In pods", (OwnershipState.POD,)),
    ("reserved", "Reserved by a team", (OwnershipState.RESERVED,)),
    ("free", "Free for host-device", (OwnershipState.FREE,)),
    (
        "other",
        "Virtual, userspace, missing or unknown",
        (
            OwnershipState.VIRTUAL,
            OwnershipState.USERSPACE,
            OwnershipState.MISSING,
            OwnershipState.UNKNOWN,
        ),
    ),
]


@dataclass
class OwnerGroup:
    key: str
    title: str
    interfaces: list[Interface] = field(default_factory=list)
    # Only for the "enslaved" group: master name -> its members.
    masters: dict[str, list[Interface]] = field(default_factory=dict)


def group_by_owner(interfaces: list[Interface]) -> list[OwnerGroup]:
    by_state: dict[str, OwnerGroup] = {}
    groups = []
    for key, title, states in GROUPS:
        group = OwnerGroup(key, title)
        groups.append(group)
        for state in states:
            by_state[state] = group
    members: dict[str, list[Interface]] = defaultdict(list)
    for interface in interfaces:
        by_state.get(interface.state, groups[-1]).interfaces.append(interface)
        if interface.state == OwnershipState.ENSLAVED and interface.master:
            members[interface.master].append(interface)
    by_state[OwnershipState.ENSLAVED].masters = dict(sorted(members.items()))
    return groups


@dataclass
class SriovPf:
    """An SR-IOV PF of the node (its row, or only its PCI address when the node reports none)
    with its VFs, by VF number."""

    address: str
    pf: Interface | None
    vfs: list[Interface] = field(default_factory=list)

    @property
    def role(self) -> str:
        """What the PF is to the node and whether its VFs may go to pods."""
        if self.pf is None:
            return ""
        return sriov.pf_panel_sentence(
            name=self.pf.name,
            state=self.pf.state,
            reason=self.pf.reason,
            holder=self.pf.holder,
            num_vfs=self.pf.sriov_num_vfs or 0,
            uplink=crosscheck.is_uplink_reason(self.pf.reason),
        )


def group_sriov(interfaces: list[Interface]) -> list[SriovPf]:
    pfs = {i.pci_address: i for i in interfaces if i.sriov_role == "pf" and i.pci_address}
    vfs: dict[str, list[Interface]] = defaultdict(list)
    for interface in interfaces:
        if interface.pf_pci_address:
            vfs[interface.pf_pci_address].append(interface)
    return [
        SriovPf(
            address,
            pfs.get(address),
            sorted(
                vfs.get(address, []),
                key=lambda vf: (vf.vf_index is None, vf.vf_index or 0, vf.pci_address),
            ),
        )
        for address in sorted(set(pfs) | set(vfs))
    ]


def diagram_link(interface: Interface, internal_ips: list[str]) -> diagrams.Link:
    """An interface as the node diagram draws it. Primary: the NIC that carries the default
    route or one of the node's InternalIPs, or is pinned as the node's uplink although the
    latest snapshot no longer says so (moving it would cut the node off)."""
    addresses = {address.split("/", 1)[0] for address in interface.address_list}
    return diagrams.Link(
        pk=interface.pk,
        name=interface.display_name,
        state=interface.state,
        kind=interface.kind,
        master=interface.master,
        master_kind=interface.master_kind,
        holder=interface.holder,
        primary=bool(
            interface.default_route_v4
            or interface.default_route_v6
            or addresses.intersection(internal_ips)
            or interface.pinned
        ),
        pods=tuple(
            diagrams.PodUse(
                pod=f"{a.namespace}/{a.pod_name}",
                nad=f"{a.nad_namespace}/{a.nad_name}",
                pod_interface=a.pod_interface,
            )
            for a in interface.live_attachments
        ),
    )


class NodeView(PageMixin, LiveMixin, DetailView):
    template_name = "inventory/node.html"
    context_object_name = "node"

    def node_queryset(self) -> QuerySet:
        nodes = Node.objects.select_related("cluster").filter(name=self.kwargs["name"])
        cluster = self.request.GET.get("cluster")
        return nodes.filter(cluster__name=cluster) if cluster else nodes

    def live_version(self) -> str:
        # Agent health changes without a history row, and an unchanged poll writes no row at
        # all: only the contact time in the cache moves. Both are part of this page's version,
        # so "last seen" advances with every sweep.
        rows = list(
            self.node_queryset().values_list(
                "pk", "last_contact_at", "stale", "agent_error", "rogue_agents", "findings"
            )
        )
        contacts = cached_contacts([row[0] for row in rows])
        return f"{history_version()}-{digest(*rows, sorted(contacts.items()))}"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.htmx and "since" in request.GET and not self.node_queryset().exists():
            return stop_polling()
        return super().get(request, *args, **kwargs)

    def get_object(self, queryset: QuerySet | None = None) -> Node:
        nodes = list(self.node_queryset()[:2])
        if not nodes:
            cluster = self.request.GET.get("cluster")
            raise Http404(
                f"No node {self.kwargs['name']}" + (f" in cluster {cluster}" if cluster else "")
            )
        # The same name in two clusters and no `cluster`: the page asks which one instead of
        # showing one of them (docs/CLUSTERS.md); every link the portal draws names the cluster.
        self.ambiguous = len(nodes) > 1
        return nodes[0]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        node = self.object
        if self.ambiguous:
            context["clusters"] = list(
                Node.objects.filter(name=node.name)
                .values_list("cluster__name", flat=True)
                .order_by("cluster__name")
            )
            return context
        interfaces = list(
            node.interfaces.prefetch_related(
                active_reservations(),
                Prefetch(
                    "attachments",
                    queryset=PodAttachment.objects.filter(status=AttachmentStatus.ATTACHED),
                    to_attr="live_attachments",
                ),
            ).order_by("name")
        )
        contact = node.last_contact
        for interface in interfaces:
            interface.last_seen = interface.seen_at(contact)
        internal_ips = [str(ip) for ip in (node.internal_ips or [])]
        cni = node.cni if isinstance(node.cni, dict) else {}
        context.update(
            groups=group_by_owner(interfaces),
            sriov_pfs=group_sriov(interfaces),
            interface_count=len(interfaces),
            breaches=[i for i in interfaces if i.breach],
            last_contact=contact,
            diagram=diagrams.node_diagram(
                node.name,
                ", ".join(internal_ips),
                [diagram_link(interface, internal_ips) for interface in interfaces],
            ),
            # The agent reports each directory as {"path", "host_device", ...}; older or
            # hand-made facts may be plain paths.
            cni_bin_dirs=[
                d.get("path", "") if isinstance(d, dict) else str(d)
                for d in (cni.get("bin_dirs") or [])
            ],
            host_device=cni.get("host_device") or None,
            # The poll names the cluster: another cluster may get a node of this name later.
            cluster_query=f"?cluster={quote(node.cluster.name)}",
        )
        return context
