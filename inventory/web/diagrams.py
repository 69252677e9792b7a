"""Pictures of the inventory, computed as plain positioned shapes (no I/O, no HTML): the node
page's diagram of links, the fleet page's bars per node and an interface's state timeline. The
templates draw them as inline SVG or CSS; every text here is untrusted (names and aliases come
from nodes, pod and NAD names from the cluster) and reaches the page only through Django's
autoescaping, never marked safe.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

# --- the node diagram ------------------------------------------------------------------------

ROW = 38  # vertical distance between rows
BOX_HEIGHT = 28
MARGIN = 12
NODE_WIDTH = 150
COLUMNS = (MARGIN, 210, 420, 640)  # x of: node, its links, their members / pods, members' pods
LINK_WIDTH = 180
POD_WIDTH = 250
LABEL_CHARS = 22
POD_LABEL_CHARS = 34
# More links than this held by one CNI (a Calico veth per pod) are drawn as one box.
CNI_COLLAPSE_AFTER = 3
STATE_ORDER = ("system", "cni", "enslaved", "pod", "reserved", "free")


@dataclass(frozen=True)
class PodUse:
    pod: str  # namespace/name
    nad: str  # namespace/name
    pod_interface: str


@dataclass(frozen=True)
class Link:
    """What the diagram needs of one interface."""

    pk: int
    name: str
    state: str
    kind: str = ""
    master: str = ""
    master_kind: str = ""
    holder: str = ""
    primary: bool = False  # the node's own uplink: default route, node address, or pinned
    pods: tuple[PodUse, ...] = ()


@dataclass(frozen=True)
class Box:
    role: str  # node | link | summary | pod
    x: int
    y: int
    width: int
    label: str
    sublabel: str = ""
    title: str = ""  # the full text, as a tooltip, when the label is shortened
    state: str = ""
    pk: int | None = None  # the interface a link box opens
    primary: bool = False
    height: int = BOX_HEIGHT

    @property
    def text_x(self) -> int:
        return self.x + 10

    @property
    def text_y(self) -> int:
        return self.y + (12 if self.sublabel else 18)


@dataclass(frozen=True)
class Edge:
    path: str  # SVG path data
    role: str  # uplink | member | pod


@dataclass
class Diagram:
    width: int
    height: int
    boxes: list[Box] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)

    def box(self, role: str, label: str) -> Box | None:
        return next((b for b in self.boxes if b.role == role and b.label == label), None)


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _order(link: Link) -> tuple:
    rank = STATE_ORDER.index(link.state) if link.state in STATE_ORDER else len(STATE_ORDER)
    return (not link.primary, rank, link.name)


def node_diagram(node_name: str, subtitle: str, links: Iterable[Link]) -> Diagram:
    """The node at the left, its top-level links beside it (the primary one first), bond and
    bridge members beside their master, and the pod (with the NAD) beside a NIC a pod holds."""
    links = [link for link in links if link.kind != "loopback" and link.name != "lo"]
    names = {link.name for link in links}
    members: dict[str, list[Link]] = defaultdict(list)
    top: list[Link] = []
    for link in links:
        if link.master and link.master in names:
            members[link.master].append(link)
        else:
            top.append(link)

    # One box for a crowd of CNI links with the same holder (a Calico veth per pod).
    by_holder: dict[str, list[Link]] = defaultdict(list)
    for link in top:
        if link.state == "cni" and not members.get(link.name):
            by_holder[link.holder or "primary CNI"].append(link)
    crowded = {h: group for h, group in by_holder.items() if len(group) > CNI_COLLAPSE_AFTER}
    collapsed = {link.pk for group in crowded.values() for link in group}
    top = [link for link in top if link.pk not in collapsed]

    diagram = Diagram(width=COLUMNS[3] + POD_WIDTH + MARGIN, height=0)
    row = 0
    uplink_rows: list[int] = []

    def place_pods(link: Link, column: int, first_row: int) -> int:
        """Pods of `link` from `first_row` on; returns the rows used (at least 1)."""
        x_from = COLUMNS[column - 1] + LINK_WIDTH
        for offset, use in enumerate(link.pods):
            y = _y(first_row + offset)
            label = shorten(use.pod, POD_LABEL_CHARS)
            sub = shorten(f"NAD {use.nad}" + (f" as {use.pod_interface}" if use.pod_interface
                                                else ""), POD_LABEL_CHARS + 6)  # fmt: skip
            diagram.boxes.append(
                Box("pod", COLUMNS[column], y, POD_WIDTH, label, sub, title=f"{use.pod} ({sub})")
            )
            y_link = _y(first_row) + BOX_HEIGHT // 2
            diagram.edges.append(
                Edge(_elbow(x_from, y_link, COLUMNS[column], y + BOX_HEIGHT // 2), "pod")
            )
        return max(1, len(link.pods))

    for link in sorted(top, key=_order):
        uplink_rows.append(row)
        diagram.boxes.append(_link_box(link, COLUMNS[1], _y(row)))
        own = members.get(link.name, [])
        if own:
            first = row
            for member in sorted(own, key=_order):
                diagram.boxes.append(_link_box(member, COLUMNS[2], _y(row)))
                diagram.edges.append(
                    Edge(
                        _elbow(
                            COLUMNS[1] + LINK_WIDTH,
                            _y(first) + BOX_HEIGHT // 2,
                            COLUMNS[2],
                            _y(row) + BOX_HEIGHT // 2,
                        ),
                        "member",
                    )
                )
                row += place_pods(member, 3, row) if member.pods else 1
        elif link.pods:
            row += place_pods(link, 2, row)
        else:
            row += 1
    for holder, group in sorted(crowded.items()):
        uplink_rows.append(row)
        diagram.boxes.append(
            Box(
                "summary",
                COLUMNS[1],
                _y(row),
                LINK_WIDTH,
                shorten(holder, LABEL_CHARS),
                f"{len(group)} links",
                title=", ".join(sorted(link.name for link in group)),
                state="cni",
            )
        )
        row += 1

    rows = max(row, 1)
    node_height = _y(rows - 1) + BOX_HEIGHT - MARGIN
    diagram.boxes.insert(
        0,
        Box(
            "node",
            COLUMNS[0],
            MARGIN,
            NODE_WIDTH,
            shorten(node_name, LABEL_CHARS - 4),
            shorten(subtitle, LABEL_CHARS - 2),
            title=f"{node_name} {subtitle}".strip(),
            height=node_height,
        ),
    )
    for uplink_row in uplink_rows:
        y = _y(uplink_row) + BOX_HEIGHT // 2
        diagram.edges.append(Edge(f"M{COLUMNS[0] + NODE_WIDTH} {y}H{COLUMNS[1]}", "uplink"))
    diagram.height = _y(rows - 1) + BOX_HEIGHT + MARGIN
    return diagram


def _y(row: int) -> int:
    return MARGIN + row * ROW


def _elbow(x1: int, y1: int, x2: int, y2: int) -> str:
    middle = (x1 + x2) // 2
    return f"M{x1} {y1}H{middle}V{y2}H{x2}"


def _link_box(link: Link, x: int, y: int) -> Box:
    details = []
    if link.primary:
        details.append("primary")
    if link.kind in ("bond", "bridge", "team"):
        details.append(link.kind)
    details.append(link.state)
    return Box(
        "link",
        x,
        y,
        LINK_WIDTH,
        shorten(link.name, LABEL_CHARS),
        " · ".join(details),
        title=link.name + (f" — {link.holder}" if link.holder else ""),
        state=link.state,
        pk=link.pk,
        primary=link.primary,
    )


# --- bars per node ---------------------------------------------------------------------------

BAR_STATES = ("free", "reserved", "pod")


@dataclass(frozen=True)
class NodeBar:
    node: str
    counts: dict[str, int]
    segments: tuple[tuple[str, int, float], ...]  # (state, count, % of the widest bar)
    cluster: str = ""  # node names are unique per cluster only


def node_bars(counts: Mapping[str | tuple[str, str], dict[str, int]]) -> list[NodeBar]:
    """Free / reserved / in-pod NICs per node (a name, or (name, cluster)), scaled to the node
    with the most of them."""
    widest = max((sum(c.get(s, 0) for s in BAR_STATES) for c in counts.values()), default=0)
    bars = []
    for key in sorted(counts):
        node, cluster = key if isinstance(key, tuple) else (key, "")
        row = {state: counts[key].get(state, 0) for state in BAR_STATES}
        segments = tuple(
            (state, n, round(100 * n / widest, 2)) for state, n in row.items() if n and widest
        )
        bars.append(NodeBar(node, row, segments, cluster))
    return bars


# --- an interface's timeline -----------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    at: datetime
    old_state: str
    new_state: str


@dataclass(frozen=True)
class Segment:
    state: str
    start: datetime
    end: datetime
    percent: float  # of the whole timeline's width


def state_timeline(
    changes: Sequence[Change], *, since: datetime, now: datetime, current: str
) -> list[Segment]:
    """The states a NIC went through from `since` to `now`, one segment per state, from its
    history's state changes (oldest first; changes without a state are ignored)."""
    changes = sorted(
        (c for c in changes if c.new_state and since <= c.at <= now), key=lambda c: c.at
    )
    if now <= since:
        return [Segment(current, since, now, 100.0)]
    total = (now - since).total_seconds()
    state = (changes[0].old_state or changes[0].new_state) if changes else current
    start = since
    segments: list[Segment] = []
    for change in changes:
        if change.at > start:
            segments.append(_segment(state, start, change.at, total))
        state, start = change.new_state, change.at
    # Up to now the NIC is in its current state (the last change's, unless history is cut).
    segments.append(_segment(current, start, now, total))
    return _merge(segments)


def _segment(state: str, start: datetime, end: datetime, total: float) -> Segment:
    return Segment(state, start, end, round(100 * (end - start).total_seconds() / total, 3))


def _merge(segments: list[Segment]) -> list[Segment]:
    merged: list[Segment] = []
    for segment in segments:
        if merged and merged[-1].state == segment.state:
            last = merged.pop()
            segment = Segment(
                last.state, last.start, segment.end, round(last.percent + segment.percent, 3)
            )
        merged.append(segment)
    return merged
