"""Runs inside a test namespace (``ip netns exec NS python -m tests.agent.state_probe``) and
answers, one JSON line per request line on stdin:

- ``incremental``: the agent collector's facts, kept current from netlink notifications, with
  how many notifications it applied and how many full reads it did;
- ``full``: a fresh full read (new netlink socket, every sysfs file read again);
- ``pyroute2``: a full read whose netlink part goes through pyroute2 instead of the agent's own
  codec (an independent decoder of the same kernel answers);
- ``hold`` / ``release``: take and give back the collector's lock.

``ip netns exec`` mounts the namespace's own sysfs, as the agent's netns worker does.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys

from nodeagent.collector import LocalCollector
from nodeagent.facts import assemble, read_netlink
from nodeagent.rtnetlink import RT_TABLE_MAIN, RTN_UNICAST, RtnlDumper
from nodeagent.sysfs import Sysfs


def _pyroute2_mac(value: str | None) -> str | None:
    if not value or set(value) <= {"0", ":"}:
        return None
    return value


def read_with_pyroute2() -> tuple[list[dict], list[dict], set[int], set[int]]:
    """What the agent read through pyroute2 before it had its own codec (same output shape)."""
    from pyroute2 import IPRoute

    with IPRoute() as ipr:
        links = []
        for msg in ipr.get_links():
            linkinfo = msg.get_attr("IFLA_LINKINFO")
            proplist = msg.get_attr("IFLA_PROP_LIST")
            links.append(
                {
                    "ifindex": msg["index"],
                    "name": msg.get_attr("IFLA_IFNAME"),
                    "flags": msg["flags"],
                    "info_kind": linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo else None,
                    "master_ifindex": msg.get_attr("IFLA_MASTER"),
                    "operstate": (msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN").lower(),
                    "carrier": msg.get_attr("IFLA_CARRIER"),
                    "mtu": msg.get_attr("IFLA_MTU"),
                    "mac": _pyroute2_mac(msg.get_attr("IFLA_ADDRESS")),
                    "permanent_mac": _pyroute2_mac(msg.get_attr("IFLA_PERM_ADDRESS")),
                    "altnames": proplist.get_attrs("IFLA_ALT_IFNAME") if proplist else [],
                    "alias": msg.get_attr("IFLA_IFALIAS"),
                }
            )
        scopes = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
        addresses = [
            {
                "ifindex": msg["index"],
                "family": 4 if msg["family"] == socket.AF_INET else 6,
                "address": msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS"),
                "prefixlen": msg["prefixlen"],
                "scope": scopes.get(msg["scope"], str(msg["scope"])),
            }
            for msg in ipr.get_addr()
        ]
        defaults: dict[int, set[int]] = {}
        for family in (socket.AF_INET, socket.AF_INET6):
            found: set[int] = set()
            for msg in ipr.get_routes(family=family):
                table = msg.get_attr("RTA_TABLE") or msg["table"]
                if msg["dst_len"] != 0 or table != RT_TABLE_MAIN or msg["type"] != RTN_UNICAST:
                    continue
                if msg.get_attr("RTA_OIF"):
                    found.add(msg.get_attr("RTA_OIF"))
                for hop in msg.get_attr("RTA_MULTIPATH") or []:
                    if hop.get("oif"):
                        found.add(hop["oif"])
            defaults[family] = found
    return links, addresses, defaults[socket.AF_INET], defaults[socket.AF_INET6]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--resync-interval", type=float, default=1e9)
    parser.add_argument("--event-buffer", type=int, default=None)
    args = parser.parse_args()
    extra = {"event_buffer_bytes": args.event_buffer} if args.event_buffer else {}
    collector = LocalCollector(resync_interval=args.resync_interval, **extra)
    collector.start()
    sysfs = Sysfs()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        op = line.strip()
        if op == "incremental":
            answer = {
                "facts": collector.facts(),
                "applied_messages": collector.applied_messages,
                "full_reads": collector.full_reads,
                "resyncs_with_changes": collector.resyncs_with_changes,
            }
        elif op == "full":
            dumper = RtnlDumper()
            try:
                links, pci = assemble(*read_netlink(dumper), sysfs)
            finally:
                dumper.close()
            answer = {"facts": {"links": links, "pci_functions": pci}}
        elif op == "hold":
            # Keeps the collector's background thread from draining notifications (to let a
            # burst overflow the socket); "release" lets it go on.
            collector._lock.acquire()
            answer = {"ok": True}
        elif op == "release":
            collector._lock.release()
            answer = {"ok": True}
        elif op == "pyroute2":
            links, pci = assemble(*read_with_pyroute2(), sysfs)
            answer = {"facts": {"links": links, "pci_functions": pci}}
        else:
            answer = {"error": f"unknown op {op!r}"}
        print(json.dumps(answer), flush=True)
    collector.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
