"""Template filters of the dashboard: numbers as people read them, node links with their cluster."""

from __future__ import annotations

from urllib.parse import urlencode

from django import template
from django.urls import reverse

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
