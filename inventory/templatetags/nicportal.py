"""Template filters and tags of the dashboard: numbers as people read them, node links with their
cluster, and the markup of the fleet page's many rows."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from django import template
from django.template import Context
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe

from inventory.choices import OwnershipState

register = template.Library()

UNKNOWN = "–"
BAR_COUNTS = ("free", "reserved", "pod")  # a node bar's counts, in its order


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


# --- a NIC's state and actions, the fleet table's rows, the per-node bars ---------------------
#
# Built in Python: the fleet page renders 50 to 200 rows and 24 bars, and the template engine
# spent more than half of the page's CPU on them (a lookup, localisation and escaping per
# variable, an include per cell, a reverse() per link); format_html costs several times what
# the markup needs too. So every value shown goes through html.escape (what Django's escape
# filter does, minus its lazy-string checks) and the markup is marked safe once, in _markup().
# The badge and the actions are tags so that every page showing a NIC uses this one markup.


def _markup(html_text: str) -> SafeString:
    """Markup assembled in this module from literal tags and html.escape()d values."""
    return mark_safe(html_text)  # noqa: S308 (every value in it was escaped by _text())


def _text(value: Any) -> str:
    """A value as template output shows it: str() of it, escaped (quotes too)."""
    return html.escape(str(value))


@register.simple_tag
def state_badge(interface: Any) -> SafeString:
    """The NIC's state, its reason folded beneath it, and a breach badge when it is one."""
    return _markup(_badge(interface))


def _badge(interface: Any) -> str:
    pk, state, reason = interface.pk, _text(interface.state), _text(interface.reason)
    badge = (
        f'<details class="state" data-testid="state-{pk}"><summary>'
        f'<span class="badge s-{state}" title="{reason}">{state}</span></summary>'
        f'<div class="reason">{reason or "no reason recorded"}</div></details>'
    )
    if interface.breach:
        badge += (
            f' <span class="badge breach" title="{_text(interface.breach)}"'
            f' data-testid="breach-{pk}">breach</span>'
        )
    return badge


@register.simple_tag(takes_context=True)
def row_actions(context: Context, interface: Any) -> SafeString:
    """Reserve (a free NIC) and build a NAD (a free or reserved one)."""
    reserve_path = _path_of("inventory:interface-reserve")
    return _markup(_actions(interface, reserve_path, _text(context["nad_builder_path"])))


def _actions(interface: Any, reserve_path: Callable[[int], str], nad_builder_path: str) -> str:
    pk, state = interface.pk, interface.state
    reserve = nad = ""
    if state == OwnershipState.FREE:
        reserve = f'<a class="btn small" href="{_text(reserve_path(pk))}">Reserve</a>'
    if state in (OwnershipState.FREE, OwnershipState.RESERVED):
        nad = f'<a class="btn small" href="{nad_builder_path}?interface={pk}">NAD</a>'
    return f'<span class="row-actions">\n{reserve}\n{nad}\n</span>'


def _path_of(viewname: str) -> Callable[[int], str]:
    """reverse(viewname, args=[pk]) for many primary keys at the cost of one reverse(): the
    path of a placeholder key with each key's digits put in its place."""
    placeholder = "987654321"
    head, _, tail = reverse(viewname, args=[int(placeholder)]).rpartition(placeholder)
    return lambda pk: f"{head}{int(pk)}{tail}"


@register.simple_tag(takes_context=True)
def fleet_rows(context: Context, interfaces: list[Any], several_clusters: bool) -> SafeString:
    """The fleet table's body rows: node, interface, state, speed, driver, PCI, holder, MAC,
    the reserving team and the actions (and the cluster first when there are several). Reads
    each interface's columns and `node_name`, `cluster_name` and `reserved_team` (the rows of
    read/pages.py's with_active_reservation): no node, cluster or reservation objects."""
    nad_builder_path = _text(context["nad_builder_path"])
    interface_path = _path_of("inventory:interface")
    reserve_path = _path_of("inventory:interface-reserve")
    node_links: dict[tuple[str, str], str] = {}  # a page shows the NICs of a few nodes
    rows = []
    for interface in interfaces:
        node, cluster = interface.node_name, interface.cluster_name
        link = node_links.get((node, cluster))
        if link is None:
            link = node_links[node, cluster] = _text(node_url(node, cluster))
        alias, absent = interface.alias, "" if interface.present else ' class="absent"'
        rows.append(
            f'<tr id="interface-{interface.pk}"{absent}>'
            + (f'<td data-testid="cluster">{_text(cluster)}</td>' if several_clusters else "")
            + f'<td><a href="{link}">{_text(node)}</a></td>'
            f'<td><a class="mono" href="{_text(interface_path(interface.pk))}">'
            f"{_text(interface.display_name)}</a>"
            + (f'<span class="alias">{_text(alias)}</span>' if alias else "")
            + f"</td><td>{_badge(interface)}</td>"
            f'<td class="num">{_text(link_speed(interface.speed_mbps))}</td>'
            f"<td>{_text(interface.driver or UNKNOWN)}</td>"
            f'<td class="mono">{_text(interface.pci_address or UNKNOWN)}</td>'
            f'<td class="holder">{_text(interface.holder)}</td>'
            f'<td class="mono hide-narrow">{_text(interface.mac)}</td>'
            f"<td>{_text(interface.reserved_team or '')}</td>"
            f"<td>{_actions(interface, reserve_path, nad_builder_path)}</td></tr>\n"
        )
    return _markup("".join(rows))


@register.simple_tag
def node_bar_rows(bars: list[Any], several_clusters: bool) -> SafeString:
    """The fleet page's per-node bars (web/diagrams.py's NodeBar): the node's link, its free,
    reserved and in-pod NICs as segments scaled to the widest node, and their counts."""
    rows = []
    for bar in bars:
        node, counts = _text(bar.node), bar.counts
        free, reserved, pod = (_text(counts.get(state, "")) for state in BAR_COUNTS)
        test_id, shown = node, node
        if several_clusters:
            test_id = f"{_text(bar.cluster)}-{node}"
            shown = f'<span class="muted">{_text(bar.cluster)}/</span>{node}'
        segments = "".join(
            f'<span class="seg s-{_text(state)}" style="width:{_text(percent)}%"'
            f' title="{_text(count)} {_text(state)}" data-testid="seg-{_text(state)}">'
            f"{_text(count)}</span>"
            for state, count, percent in bar.segments
        )
        rows.append(
            f'<div class="bar-row" data-testid="bar-{test_id}">\n'
            f'      <a class="mono" href="{_text(node_url(bar.node, bar.cluster))}">{shown}</a>\n'
            f'      <div class="bar" role="img" aria-label="{node}: {free} free, {reserved}'
            f' reserved, {pod} in pods">{segments}</div>\n'
            f'      <span class="small muted">{free} free · {reserved} reserved · {pod} in pods'
            "</span>\n    </div>\n"
        )
    return _markup("".join(rows))
