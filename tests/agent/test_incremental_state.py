"""The facts the agent keeps current from netlink notifications equal a fresh full read.

Every test changes a real namespace with iproute2, then compares the collector's incremental
facts with full reads taken just before and just after it (``settled``): when the two full reads
agree, the namespace did not move in between, so the incremental facts must equal them exactly
(after the short delay with which the kernel announces a few changes). The collector runs with
its periodic full re-read switched off (except where that safety net is the subject), and each
test checks that it did no full read beyond the first one, so what is compared really is the
incremental path.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time

import pytest

from tests.agent.conftest import REPO, ip

pytestmark = pytest.mark.netns


class Probe:
    """tests.agent.state_probe running inside a namespace."""

    def __init__(self, netns: str, *args: str) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns, sys.executable, "-m", "tests.agent.state_probe"]
            + list(args),
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def ask(self, op: str) -> dict:
        self.proc.stdin.write(op + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, f"state probe exited ({self.proc.poll()})"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def probe():
    started: list[Probe] = []

    def start(netns: str, *args: str) -> Probe:
        started.append(Probe(netns, *args))
        return started[-1]

    yield start
    for each in started:
        each.close()


def difference(expected: dict, got: dict) -> str:
    want = {link["ifindex"]: link for link in expected["links"]}
    have = {link["ifindex"]: link for link in got["links"]}
    lines = []
    for ifindex in sorted(set(want) | set(have)):
        a, b = want.get(ifindex), have.get(ifindex)
        if a is None or b is None:
            lines.append(f"ifindex {ifindex}: full read {a and a['name']}, incremental {b}")
        elif a != b:
            keys = sorted(key for key in a if a[key] != b.get(key))
            lines.append(f"{a['name']}: " + ", ".join(f"{k}={a[k]!r}/{b.get(k)!r}" for k in keys))
    if expected["pci_functions"] != got["pci_functions"]:
        lines.append("pci_functions differ")
    return "; ".join(lines)


def settled(probe: Probe, step: str, patience: float = 3.0) -> dict:
    """The incremental answer once it equals full reads taken just before and just after it.

    The kernel announces a few changes a little after a dump already shows them (an IPv6
    address once its DAD work has run, a carrier change when linkwatch runs, up to a second
    later), so the incremental facts may trail for that long; they must then catch up by
    themselves. Anything still different after ``patience`` seconds is a defect.
    """
    deadline = time.monotonic() + patience
    while True:
        before = probe.ask("full")["facts"]
        incremental = probe.ask("incremental")
        after = probe.ask("full")["facts"]
        if before == after == incremental["facts"]:
            return incremental
        if time.monotonic() > deadline:
            assert before == after, f"after {step}: the namespace kept changing"
            raise AssertionError(f"after {step}: {difference(after, incremental['facts'])}")
        time.sleep(0.05)


def run_steps(netns: str, probe: Probe, steps: list[tuple[str, ...]]) -> dict:
    answer = settled(probe, "start")
    for step in steps:
        ip(*step, netns=netns)
        answer = settled(probe, " ".join(step))
    assert answer["full_reads"] == 1, "the incremental path fell back to a full read"
    return answer


def base_node(netns: str) -> None:
    """An uplink with addresses and v4/v6 default routes, a bridge with a port, a spare NIC."""
    ip("link", "add", "eth0", "type", "veth", "peer", "name", "sw0", netns=netns)
    ip("link", "add", "eth1", "type", "veth", "peer", "name", "sw1", netns=netns)
    ip("link", "add", "br0", "type", "bridge", netns=netns)
    ip("link", "set", "sw1", "master", "br0", netns=netns)
    for name in ("eth0", "sw0", "br0", "sw1"):
        ip("link", "set", name, "up", netns=netns)
    ip("addr", "add", "10.77.0.2/24", "dev", "eth0", netns=netns)
    ip("-6", "addr", "add", "2001:db8:77::2/64", "dev", "eth0", "nodad", netns=netns)
    ip("route", "add", "default", "via", "10.77.0.1", "dev", "eth0", netns=netns)
    ip("-6", "route", "add", "default", "via", "2001:db8:77::1", "dev", "eth0", netns=netns)


@pytest.fixture
def node(make_netns):
    netns = make_netns("inc")
    base_node(netns)
    return netns


def test_it_follows_links_added_and_deleted(node, probe):
    answer = run_steps(
        node,
        probe(node),
        [
            ("link", "add", "eth2", "type", "veth", "peer", "name", "sw2"),
            ("link", "add", "mv0", "link", "eth0", "type", "macvlan", "mode", "bridge"),
            ("link", "add", "vx0", "type", "vxlan", "id", "42", "dstport", "4789", "dev", "eth0"),
            ("link", "add", "br1", "type", "bridge"),
            ("link", "del", "mv0"),
            ("link", "del", "eth2"),  # takes its peer sw2 with it
            ("link", "del", "br0"),  # its port sw1 stays, without a master
        ],
    )
    names = {link["name"] for link in answer["facts"]["links"]}
    assert names == {"lo", "eth0", "sw0", "eth1", "sw1", "vx0", "br1"}
    assert answer["applied_messages"] > 0


def test_it_follows_renames_mtu_mac_alias_and_altnames(node, probe):
    answer = run_steps(
        node,
        probe(node),
        [
            ("link", "set", "eth1", "name", "net1"),  # eth1 is down: renames need that
            ("link", "set", "eth0", "mtu", "9000"),
            ("link", "set", "eth0", "address", "52:54:00:12:34:56"),
            ("link", "set", "eth0", "alias", "uplink"),  # eth0 is up: announced
            ("link", "property", "add", "dev", "eth0", "altname", "uplink-primary"),
            ("link", "set", "sw0", "down"),
            ("link", "set", "sw0", "name", "renamed0"),
            ("link", "set", "renamed0", "up"),
            ("link", "property", "del", "dev", "eth0", "altname", "uplink-primary"),
            ("link", "set", "net1", "name", "eth1"),
        ],
    )
    links = {link["name"]: link for link in answer["facts"]["links"]}
    assert links["eth0"]["mtu"] == 9000 and links["eth0"]["alias"] == "uplink"
    assert links["eth0"]["mac"] == "52:54:00:12:34:56" and links["eth0"]["altnames"] == []
    assert "renamed0" in links and "sw0" not in links


def test_it_follows_addresses_added_and_removed(node, probe):
    answer = run_steps(
        node,
        probe(node),
        [
            ("addr", "add", "10.77.0.3/24", "dev", "eth0"),  # a secondary
            ("addr", "add", "192.0.2.1/32", "dev", "eth1"),  # on a link that is down
            ("addr", "add", "10.99.0.1/16", "dev", "br0"),
            ("-6", "addr", "add", "2001:db8:99::1/64", "dev", "br0", "nodad"),
            ("addr", "del", "10.77.0.2/24", "dev", "eth0"),  # the primary: its secondary goes too
            ("-6", "addr", "del", "2001:db8:77::2/64", "dev", "eth0"),
            ("addr", "flush", "dev", "br0"),
        ],
    )
    links = {link["name"]: link for link in answer["facts"]["links"]}
    assert links["eth1"]["addresses"] == [
        {"family": 4, "address": "192.0.2.1", "prefixlen": 32, "scope": "global"}
    ]
    assert not [a for a in links["eth0"]["addresses"] if a["family"] == 4]


def test_it_follows_master_changes(node, probe):
    answer = run_steps(
        node,
        probe(node),
        [
            ("link", "set", "eth1", "master", "br0"),
            ("link", "set", "sw1", "nomaster"),  # the kernel also sends an AF_BRIDGE "delete"
            ("link", "add", "br1", "type", "bridge"),
            ("link", "set", "eth1", "master", "br1"),
            ("link", "set", "sw1", "master", "br1"),
            ("link", "del", "br1"),
        ],
    )
    links = {link["name"]: link for link in answer["facts"]["links"]}
    assert links["eth1"]["master"] is None and links["sw1"]["master"] is None


def test_it_follows_links_going_up_and_down(node, probe):
    answer = run_steps(
        node,
        probe(node),
        [
            ("link", "set", "eth1", "up"),
            ("link", "set", "sw1", "down"),
            ("link", "set", "eth0", "down"),  # IPv4 drops its default route without a word
            ("link", "set", "eth0", "up"),
            ("link", "set", "br0", "down"),
        ],
    )
    links = {link["name"]: link for link in answer["facts"]["links"]}
    assert links["eth0"]["default_route_v4"] is False  # gone with the link, not re-added
    assert links["br0"]["carrier"] is None


def test_it_follows_default_route_changes(node, probe):
    answer = run_steps(
        node,
        probe(node),
        [
            ("addr", "add", "10.88.0.2/24", "dev", "br0"),
            ("route", "replace", "default", "via", "10.88.0.1", "dev", "br0"),
            ("route", "add", "198.51.100.0/24", "via", "10.77.0.1"),  # not a default route
            ("route", "add", "default", "via", "10.77.0.1", "table", "100"),  # not main
            ("route", "del", "default"),
            (
                "route",
                "add",
                "default",
                "nexthop",
                "via",
                "10.77.0.1",
                "nexthop",
                "via",
                "10.88.0.1",
            ),
            ("-6", "route", "del", "default"),
            ("-6", "route", "add", "default", "dev", "br0"),
            ("addr", "del", "10.88.0.2/24", "dev", "br0"),  # drops its v4 nexthop silently
        ],
    )
    links = {link["name"]: link for link in answer["facts"]["links"]}
    assert links["br0"]["default_route_v6"] is True and links["eth0"]["default_route_v6"] is False


def test_it_follows_a_link_moved_to_another_namespace_and_back(node, make_netns, probe):
    # What the host-device plugin does on ADD and DEL.
    pod = make_netns("pod")
    checker = probe(node)
    settled(checker, "start")
    ip("link", "set", "eth1", "netns", pod, netns=node)
    settled(checker, "eth1 moved into the pod")
    ip("link", "set", "eth1", "name", "net1", netns=pod)
    ip("link", "set", "net1", "alias", "eth1", netns=pod)
    ip("link", "set", "net1", "name", "eth1", netns=pod)
    ip("link", "set", "eth1", "netns", node, netns=pod)
    answer = settled(checker, "eth1 back from the pod")
    assert "eth1" in {link["name"] for link in answer["facts"]["links"]}
    assert answer["full_reads"] == 1


def test_a_random_sequence_of_changes_keeps_it_equal_to_a_full_read(node, probe):
    seed = 20261201
    rng = random.Random(seed)
    checker = probe(node)
    settled(checker, "start")
    veths: list[str] = []
    for step in range(60):
        links = ["eth0", "eth1", "sw1", "br0", *veths]
        link = rng.choice(links)
        choice = rng.randrange(10)
        if choice == 0 or not veths:
            veths.append(f"v{step}")
            command = ("link", "add", f"v{step}", "type", "veth", "peer", "name", f"p{step}")
        elif choice == 1:
            victim = veths.pop(rng.randrange(len(veths)))
            command = ("link", "del", victim)
        elif choice == 2:
            command = ("link", "set", link, rng.choice(["up", "down"]))
        elif choice == 3:
            command = ("addr", "add", f"10.{step}.{rng.randrange(250)}.1/24", "dev", link)
        elif choice == 4:
            command = ("-6", "addr", "add", f"2001:db8:{step:x}::1/64", "dev", link, "nodad")
        elif choice == 5:
            command = ("addr", "flush", "dev", link)
        elif choice == 6:
            command = ("link", "set", link, "master", "br0") if link != "br0" else ("link", "show")
        elif choice == 7:
            command = ("link", "set", link, "mtu", str(rng.randrange(1280, 9000)))
        elif choice == 8:
            command = ("route", "replace", "default", "dev", link)
        else:
            command = ("link", "set", link, "nomaster")
        ip(*command, netns=node, check=False)  # an impossible step (route via a down link) is ok
        answer = settled(checker, f"step {step} (seed {seed}): ip {' '.join(command)}")
    assert answer["full_reads"] == 1
    assert answer["applied_messages"] > 60


def test_an_overflowing_event_queue_forces_a_full_read_that_catches_up(node, probe):
    checker = probe(node, "--event-buffer", "4096")
    settled(checker, "start")
    # Hold the collector's lock so nothing drains the tiny queue while the burst comes.
    checker.ask("hold")
    commands = "".join(f"addr add 10.66.{i // 250}.{i % 250 + 1}/32 dev eth1\n" for i in range(300))
    subprocess.run(["ip", "-n", node, "-batch", "-"], input=commands, text=True, check=True)
    checker.ask("release")
    answer = settled(checker, "a burst of 300 addresses")
    assert answer["full_reads"] == 2  # the start, and once after the overflow
    links = {link["name"]: link for link in answer["facts"]["links"]}
    assert len(links["eth1"]["addresses"]) == 300


def test_the_periodic_full_read_catches_what_the_kernel_does_not_announce(node, probe):
    checker = probe(node, "--resync-interval", "1")
    before = settled(checker, "start")
    assert before["resyncs_with_changes"] == 0
    # An alias set on a link that is down raises no notification.
    ip("link", "set", "eth1", "alias", "was-net1", netns=node)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        answer = checker.ask("incremental")
        if answer["resyncs_with_changes"]:
            break
        time.sleep(0.2)
    answer = settled(checker, "the periodic full read")
    assert answer["resyncs_with_changes"] == 1  # found by the full read, not by a notification
    links = {link["name"]: link for link in answer["facts"]["links"]}
    assert links["eth1"]["alias"] == "was-net1"


def test_its_netlink_codec_agrees_with_pyroute2(node, probe):
    ip("link", "add", "mv0", "link", "eth0", "type", "macvlan", "mode", "bridge", netns=node)
    ip("link", "add", "vx0", "type", "vxlan", "id", "7", "dstport", "4789", netns=node)
    ip("link", "set", "eth1", "alias", 'eth7 <b>"quoted"</b> & more', netns=node)
    ip("link", "property", "add", "dev", "eth0", "altname", "uplink-primary", netns=node)
    ip("addr", "add", "10.77.0.3/24", "dev", "eth0", netns=node)
    ip("addr", "add", "10.99.0.1/16", "dev", "br0", netns=node)
    ip("route", "add", "default", "via", "10.77.0.1", "table", "100", netns=node)
    checker = probe(node)
    ours = settled(checker, "setup")["facts"]
    assert ours == checker.ask("pyroute2")["facts"]
    links = {link["name"]: link for link in ours["links"]}
    assert links["eth0"]["altnames"] == ["uplink-primary"]
    assert links["mv0"]["kind"] == "macvlan" and links["vx0"]["kind"] == "vxlan"
    assert links["sw1"]["master"] == "br0" and links["lo"]["mac"] is None
