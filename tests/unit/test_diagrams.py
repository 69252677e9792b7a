"""The pictures' geometry, from plain data: the node diagram, the bars per node and the state
timeline of an interface."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from inventory.web.diagrams import (
    Change,
    Link,
    PodUse,
    node_bars,
    node_diagram,
    state_timeline,
)


def link(pk: int, name: str, state: str = "free", **facts) -> Link:
    return Link(pk=pk, name=name, state=state, **facts)


def test_the_node_diagram_draws_the_primary_nic_first_members_beside_masters_and_pods():
    diagram = node_diagram(
        "node-a",
        "10.0.0.11",
        [
            link(1, "eth1"),
            link(2, "eth0", "system", primary=True),
            link(3, "br-ex", "virtual", kind="bridge"),
            link(4, "eth4", "enslaved", master="br-ex", master_kind="bridge"),
            link(5, "eth5", "enslaved", master="br-ex", master_kind="bridge"),
            link(6, "eth2", "pod", pods=(PodUse("default/db-0", "default/fast-net", "net1"),)),
            link(7, "lo", "system", kind="loopback"),
        ],
    )
    roles = [(b.role, b.label) for b in diagram.boxes]
    assert roles[0] == ("node", "node-a")
    assert ("link", "lo") not in roles
    top = [b for b in diagram.boxes if b.role == "link" and b.x == diagram.boxes[1].x]
    assert [b.label for b in top] == ["eth0", "eth2", "eth1", "br-ex"]
    assert top[0].primary and "primary" in top[0].sublabel
    bridge = diagram.box("link", "br-ex")
    eth4, eth5 = diagram.box("link", "eth4"), diagram.box("link", "eth5")
    assert eth4.x > bridge.x and eth4.y == bridge.y and eth5.y > eth4.y
    pod = diagram.box("pod", "default/db-0")
    nic = diagram.box("link", "eth2")
    assert pod.x > nic.x and pod.y == nic.y and "default/fast-net as net1" in pod.sublabel
    assert [e.role for e in diagram.edges].count("uplink") == 4
    assert [e.role for e in diagram.edges].count("member") == 2
    assert [e.role for e in diagram.edges].count("pod") == 1
    # Everything fits inside the picture, nothing overlaps in a column.
    for box in diagram.boxes:
        assert box.x + box.width <= diagram.width and box.y + box.height <= diagram.height
    placed = [(b.x, b.y) for b in diagram.boxes]
    assert len(placed) == len(set(placed))


def test_a_crowd_of_cni_links_is_one_box():
    links = [link(i, f"cali{i:04x}", "cni", holder="Calico") for i in range(40)]
    diagram = node_diagram("node-b", "", [link(99, "eth0", "system", primary=True), *links])
    summary = diagram.box("summary", "Calico")
    assert summary is not None and summary.sublabel == "40 links"
    assert len([b for b in diagram.boxes if b.role == "link"]) == 1


def test_long_untrusted_names_are_shortened_with_the_full_text_as_title():
    name = "ns/" + "p" * 200
    diagram = node_diagram(
        "n" * 80, "", [link(1, "eth1", "pod", pods=(PodUse(name, "ns/nad", "net1"),))]
    )
    pod = diagram.boxes[-1]
    assert len(pod.label) <= 34 and pod.label.endswith("…") and name in pod.title
    assert diagram.boxes[0].label.endswith("…")


def test_an_empty_node_is_just_the_node():
    diagram = node_diagram("node-c", "", [])
    assert [b.role for b in diagram.boxes] == ["node"] and diagram.edges == []


def test_bars_are_scaled_to_the_busiest_node():
    bars = node_bars(
        {"node-b": {"free": 2}, "node-a": {"free": 3, "reserved": 1, "pod": 4, "system": 9}}
    )
    assert [b.node for b in bars] == ["node-a", "node-b"]
    assert bars[0].segments == (("free", 3, 37.5), ("reserved", 1, 12.5), ("pod", 4, 50.0))
    assert bars[1].segments == (("free", 2, 25.0),)
    assert node_bars({}) == []
    assert node_bars({"n": {"system": 3}})[0].segments == ()


def test_the_timeline_has_one_segment_per_state_in_proportion():
    start = datetime(2026, 12, 1, tzinfo=UTC)
    at = [start + timedelta(hours=h) for h in (2, 5, 6)]
    segments = state_timeline(
        [
            Change(at[1], "reserved", "pod"),
            Change(at[0], "free", "reserved"),
            Change(at[2], "pod", "free"),
            Change(at[2], "", ""),  # an action without a state change
        ],
        since=start,
        now=start + timedelta(hours=10),
        current="free",
    )
    assert [(s.state, s.percent) for s in segments] == [
        ("free", 20.0),
        ("reserved", 30.0),
        ("pod", 10.0),
        ("free", 40.0),
    ]
    assert sum(s.percent for s in segments) == 100


def test_a_nic_that_never_changed_is_one_segment():
    start = datetime(2026, 12, 1, tzinfo=UTC)
    segments = state_timeline([], since=start, now=start + timedelta(days=1), current="system")
    assert [(s.state, s.percent) for s in segments] == [("system", 100.0)]
