"""Template filters of the dashboard: numbers as people read them, node links with their cluster."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.template import Context
from django.urls import reverse
from django.utils.html import escape, format_html, format_html_join
from django.utils.safestring import SafeString

from inventory.choices import OwnershipState

register = template.Library()

UNKNOWN = "–"


@register.filter
def link_speed(mbps: int | None) -> str:
    """A link speed with its unit: 100 -> "100 Mb/s", 10000 -> "10 Gb/s", 2500 -> "2.5 Gb/s".
    The kernel reports an unknown speed (no carrier, virtual links) as -1 or nothing."""
    if mbps is None or isinstance(mbps, bool) or not isinstance(mbps, int) or mbps <= 0:
        return UNKNOWN
    if mbps < 1000:
        return f"{mbps} Mb/s"
    gbps = mbps / 1000
    return f"{gbps:g} Gb/s" if gbps >= 100 or gbps == int(gbps) else f"{gbps:.1f} Gb/s"


@register.simple_tag
def node_url(name: str, cluster: str = "") -> str:
    """A node page's address, with its cluster: node names are unique per cluster only, so a
    link without it would be ambiguous (the node page then asks which cluster)."""
    url = reverse("inventory:node", args=[name])
    return f"{url}?{urlencode({'cluster': cluster})}" if cluster else url


# --- a NIC's state and actions, and the fleet table's rows -----------------------------------
#
# Built in Python with format_html (every value escaped unless it is already safe HTML): the
# fleet page renders 50 to 200 of these rows, and the template engine spent about half of the
# page's CPU on them (a lookup, localisation and escaping per variable, an include per cell,
# a reverse() per link). The badge and the actions are tags so that every page showing a NIC
# uses this one markup.


ABSENT = format_html(' class="{}"', "absent")


@register.simple_tag
def state_badge(interface: Any) -> SafeString:
    """The NIC's state, its reason folded beneath it, and a breach badge when it is one."""
    badge = format_html(
        '<details class="state" data-testid="state-{}"><summary>'
        '<span class="badge s-{}" title="{}">{}</span></summary>'
        '<div class="reason">{}</div></details>',
        interface.pk,
        interface.state,
        interface.reason,
        interface.state,
        interface.reason or "no reason recorded",
    )
    if not interface.breach:
        return badge
    return format_html(
        '{} <span class="badge breach" title="{}" data-testid="breach-{}">breach</span>',
        badge,
        interface.breach,
        interface.pk,
    )


@register.simple_tag(takes_context=True)
def row_actions(context: Context, interface: Any) -> SafeString:
    """Reserve (a free NIC) and build a NAD (a free or reserved one)."""
    return _row_actions(interface, context["nad_builder_path"])


def _row_actions(interface: Any, nad_builder_path: str) -> SafeString:
    reserve = nad = ""
    if interface.state == OwnershipState.FREE:
        reserve = format_html(
            '<a class="btn small" href="{}">Reserve</a>',
            reverse("inventory:interface-reserve", args=[interface.pk]),
        )
    if interface.state in (OwnershipState.FREE, OwnershipState.RESERVED):
        nad = format_html(
            '<a class="btn small" href="{}?interface={}">NAD</a>', nad_builder_path, interface.pk
        )
    return format_html('<span class="row-actions">\n{}\n{}\n</span>', reserve, nad)


@register.simple_tag(takes_context=True)
def fleet_rows(context: Context, interfaces: list[Any], several_clusters: bool) -> SafeString:
    """The fleet table's body rows: node, interface, state, speed, driver, PCI, holder, MAC,
    the reserving team and the actions (and the cluster first when there are several)."""
    nad_builder_path = context["nad_builder_path"]
    node_links: dict[tuple[str, str], str] = {}  # a page shows a few nodes' NICs
    rows = []
    for interface in interfaces:
        node = interface.node
        cluster = node.cluster.name
        link = node_links.get((node.name, cluster))
        if link is None:
            link = node_links[node.name, cluster] = node_url(node.name, cluster)
        rows.append(
            format_html(
                '<tr id="interface-{}"{}>{}<td><a href="{}">{}</a></td>'
                '<td><a class="mono" href="{}">{}</a>{}</td><td>{}</td>'
                '<td class="num">{}</td><td>{}</td><td class="mono">{}</td>'
                '<td class="holder">{}</td><td class="mono hide-narrow">{}</td>'
                "<td>{}</td><td>{}</td></tr>\n",
                interface.pk,
                "" if interface.present else ABSENT,
                format_html('<td data-testid="cluster">{}</td>', cluster)
                if several_clusters
                else "",
                link,
                node.name,
                reverse("inventory:interface", args=[interface.pk]),
                interface.display_name,
                format_html('<span class="alias">{}</span>', interface.alias)
                if interface.alias
                else "",
                state_badge(interface),
                link_speed(interface.speed_mbps),
                interface.driver or UNKNOWN,
                interface.pci_address or UNKNOWN,
                interface.holder,
                interface.mac,
                "".join(escape(r.team.name) for r in interface.active_reservations),
                _row_actions(interface, nad_builder_path),
            )
        )
    return format_html_join("", "{}", ((row,) for row in rows))
