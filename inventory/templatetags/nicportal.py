"""Template filters of the dashboard: numbers as people read them."""

from __future__ import annotations

from django import template

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
