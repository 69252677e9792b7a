"""The node view: one node's NICs grouped by who owns them, its agent's health and its CNI."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.views.generic import DetailView

from inventory.choices import AttachmentStatus, OwnershipState
from inventory.models import Interface, Node, PodAttachment
from inventory.web.views.common import (
    LiveMixin,
    PageMixin,
    digest,
    history_version,
    stop_polling,
)
from inventory.web.views.fleet import active_reservations

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


class NodeView(PageMixin, LiveMixin, DetailView):
    template_name = "inventory/node.html"
    context_object_name = "node"

    def node_queryset(self) -> QuerySet:
        nodes = Node.objects.select_related("cluster").filter(name=self.kwargs["name"])
        cluster = self.request.GET.get("cluster")
        return nodes.filter(cluster__name=cluster) if cluster else nodes

    def live_version(self) -> str:
        # Agent health changes without a history row (last contact every poll), so it is part
        # of this page's version.
        facts = self.node_queryset().values_list("last_contact_at", "stale", "agent_error")
        return f"{history_version()}-{digest(*facts)}"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.htmx and "since" in request.GET and not self.node_queryset().exists():
            return stop_polling()
        return super().get(request, *args, **kwargs)

    def get_object(self, queryset: QuerySet | None = None) -> Node:
        nodes = list(self.node_queryset()[:2])
        if not nodes:
            raise Http404("No such node")
        # The same name in two clusters: ask which one (rendered by the template).
        self.ambiguous = len(nodes) > 1
        return nodes[0]

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        node = self.object
        if self.ambiguous:
            context["clusters"] = (
                Node.objects.filter(name=node.name)
                .values_list("cluster__name", flat=True)
                .order_by("cluster__name")
            )
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
        cni = node.cni if isinstance(node.cni, dict) else {}
        context.update(
            groups=group_by_owner(interfaces),
            interface_count=len(interfaces),
            breaches=[i for i in interfaces if i.breach],
            # The agent reports each directory as {"path", "host_device", ...}; older or
            # hand-made facts may be plain paths.
            cni_bin_dirs=[
                d.get("path", "") if isinstance(d, dict) else str(d)
                for d in (cni.get("bin_dirs") or [])
            ],
            host_device=cni.get("host_device") or None,
            cluster_query=f"?cluster={node.cluster.name}"
            if self.request.GET.get("cluster")
            else "",
        )
        return context
