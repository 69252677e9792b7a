"""The namespace's links, addresses and default routes, kept current from netlink notifications.

A full read (``reload``) dumps everything and reads sysfs for every link: tens of milliseconds on
a node with many links. ``apply`` instead updates the state from the notifications that a change
caused, so the snapshot after a change costs about what one link costs:

- RTM_NEWLINK carries the link's complete state (the kernel fills it like a dump answer): it
  replaces the link, whose sysfs facts are read again (a rename moves its /sys/class/net entry,
  a carrier change its speed). RTM_DELLINK drops the link and everything about it. Link
  messages of family AF_BRIDGE are bridge-port notices, not link state, and are ignored (an
  AF_BRIDGE RTM_DELLINK means "left the bridge", not "deleted").
- Address notifications mark their link and family; those addresses are dumped again for that
  link alone (the kernel's order, which ``ip addr`` shows and a full read keeps, depends on
  scope and primary/secondary rules that are not worth re-implementing). A link notification
  re-reads the link's IPv6 addresses too: the kernel adds the link-local address when a link
  (or its carrier) comes up, before it sends the link notification, but announces the address
  only when duplicate address detection is over, about a second later. Addresses that
  autoconfiguration adds on a router advertisement are likewise announced only after that
  detection; until then (about a second) the snapshot lacks them.
- A link notification of a bridge or bond port also re-reads its master (old and new): a port
  going down or leaving can take the master's carrier and speed with it, which the kernel
  announces only when linkwatch runs, up to a second later.
- Default routes are dumped again (main table only) after a default-route notification, a link
  notification or an address removal: IPv4 drops routes silently when their link goes down or
  their source address goes away, so no route notification would say so.
- The unclaimed PCI functions are scanned again when the set of link names changed.

The kernel queues every notification before the syscall that caused it returns, in order, and
each step above ends at the current state, so applying everything queued since the last full
read gives what a new full read would. What raises no notification at all (an alias set on a
link that is down, a PCI function rebound to vfio-pci, SR-IOV counts) is caught by the periodic
full re-read the collector does as a safety net; a socket overflow forces one immediately.
"""

from __future__ import annotations

import socket

from nodeagent.facts import address_entry, join_links, read_netlink, unclaimed_pci_functions
from nodeagent.rtnetlink import (
    IFADDRMSG,
    IFINFOMSG,
    RTM_DELADDR,
    RTM_DELLINK,
    RTM_DELROUTE,
    RTM_NEWADDR,
    RTM_NEWLINK,
    RTM_NEWROUTE,
    RtnlDumper,
    decode_link,
    messages,
    route_header,
)
from nodeagent.sysfs import Sysfs

_FAMILY_NUMBERS = {socket.AF_INET: 4, socket.AF_INET6: 6}
_SOCKET_FAMILIES = {4: socket.AF_INET, 6: socket.AF_INET6}


class NetState:
    """Facts of one namespace; not thread-safe (the collector serialises every call)."""

    def __init__(self, dumper: RtnlDumper, sysfs: Sysfs, pci_scan: bool = True) -> None:
        self._dumper = dumper
        self._sysfs = sysfs
        self._pci_scan = pci_scan
        self._links: dict[int, dict] = {}
        self._devices: dict[int, dict] = {}
        # (ifindex, 4 or 6) -> that link's address entries of that family, in kernel order.
        self._addresses: dict[tuple[int, int], list[dict]] = {}
        self._default: dict[int, set[int]] = {4: set(), 6: set()}
        self._pci_functions: list[dict] = []
        self.facts: dict = {"links": [], "pci_functions": []}
        self.version = 0  # increases whenever ``facts`` changes
        self.applied_messages = 0  # notifications applied since the start (for the tests)

    # -- full read --

    def reload(self) -> list[str]:
        """Dump everything again; returns what changed (see ``_publish``)."""
        links, addresses, default_v4, default_v6 = read_netlink(self._dumper)
        self._links = {link["ifindex"]: link for link in links}
        self._devices = {
            ifindex: self._sysfs.link_device(link["name"]) for ifindex, link in self._links.items()
        }
        self._addresses = {}
        for address in addresses:
            key = (address["ifindex"], address["family"])
            self._addresses.setdefault(key, []).append(address_entry(address))
        self._default = {4: default_v4, 6: default_v6}
        self._pci_functions = self._scan_pci()
        return self._publish()

    # -- incremental --

    def apply(self, datagrams: list[bytes]) -> list[str]:
        """Apply queued notifications, oldest first; returns what changed (see ``_publish``)."""
        names_before = self._names()
        stale_addresses: set[tuple[int, int]] = set()
        stale_routes: set[int] = set()
        masters: set[int] = set()
        for data in datagrams:
            for kind, _flags, _seq, offset, end in messages(data):
                if kind in (RTM_NEWLINK, RTM_DELLINK):
                    if data[offset] != socket.AF_UNSPEC:
                        continue
                    self.applied_messages += 1
                    stale_routes |= {4, 6}
                    if kind == RTM_NEWLINK:
                        link = decode_link(data, offset, end)
                        ifindex = link["ifindex"]
                        masters |= self._masters_of(ifindex) | {link["master_ifindex"]}
                        # The IPv6 link-local address comes with the link going up (or its
                        # carrier), and the kernel announces it only once duplicate address
                        # detection is over, a second later: read it with the link's notice.
                        stale_addresses.add((ifindex, 6))
                        if ifindex not in self._links:
                            # New here (created, or moved in from another namespace): whatever
                            # it carries, read its addresses rather than assume there are none.
                            stale_addresses.add((ifindex, 4))
                        self._links[ifindex] = link
                        self._devices[ifindex] = self._sysfs.link_device(link["name"])
                    else:
                        ifindex = IFINFOMSG.unpack_from(data, offset)[2]
                        masters |= self._masters_of(ifindex)
                        self._links.pop(ifindex, None)
                        self._devices.pop(ifindex, None)
                        self._addresses.pop((ifindex, 4), None)
                        self._addresses.pop((ifindex, 6), None)
                elif kind in (RTM_NEWADDR, RTM_DELADDR):
                    family, _prefixlen, _flags, _scope, ifindex = IFADDRMSG.unpack_from(
                        data, offset
                    )
                    if family not in _FAMILY_NUMBERS:
                        continue
                    self.applied_messages += 1
                    stale_addresses.add((ifindex, _FAMILY_NUMBERS[family]))
                    if kind == RTM_DELADDR:
                        stale_routes.add(_FAMILY_NUMBERS[family])
                elif kind in (RTM_NEWROUTE, RTM_DELROUTE):
                    family, dst_len, _table, _type = route_header(data, offset)
                    if dst_len == 0 and family in _FAMILY_NUMBERS:
                        self.applied_messages += 1
                        stale_routes.add(_FAMILY_NUMBERS[family])
        for ifindex in sorted(masters - {None}):
            master = self._dumper.link(ifindex)  # see the module docstring: linkwatch is late
            if master is not None:
                if ifindex not in self._links:  # not announced to us yet: read all of it
                    stale_addresses |= {(ifindex, 4), (ifindex, 6)}
                self._links[ifindex] = master
                self._devices[ifindex] = self._sysfs.link_device(master["name"])
        self._refresh_addresses(stale_addresses)
        for family in sorted(stale_routes):
            self._default[family] = self._dumper.default_route_ifindexes(_SOCKET_FAMILIES[family])
        if self._names() != names_before:
            self._pci_functions = self._scan_pci()
        return self._publish()

    def _masters_of(self, ifindex: int) -> set[int]:
        link = self._links.get(ifindex)
        return {link["master_ifindex"]} if link and link["master_ifindex"] else set()

    def _refresh_addresses(self, stale: set[tuple[int, int]]) -> None:
        stale = {(ifindex, family) for ifindex, family in stale if ifindex in self._links}
        if not stale:
            return
        for family in sorted({family for _ifindex, family in stale}):
            socket_family = _SOCKET_FAMILIES[family]
            if self._dumper.strict:
                for ifindex in sorted(i for i, f in stale if f == family):
                    found = self._dumper.addresses(socket_family, ifindex)
                    self._store_addresses(ifindex, family, found)
            else:
                # No per-link filter on this kernel: one dump of the family, every link.
                found = self._dumper.addresses(socket_family)
                for ifindex in self._links:
                    self._store_addresses(
                        ifindex, family, [a for a in found if a["ifindex"] == ifindex]
                    )

    def _store_addresses(self, ifindex: int, family: int, found: list[dict]) -> None:
        if found:
            self._addresses[(ifindex, family)] = [address_entry(a) for a in found]
        else:
            self._addresses.pop((ifindex, family), None)

    # -- output --

    def _names(self) -> set[str]:
        return {link["name"] for link in self._links.values()}

    def _scan_pci(self) -> list[dict]:
        return unclaimed_pci_functions(self._sysfs, self._names()) if self._pci_scan else []

    def _publish(self) -> list[str]:
        """Rebuild ``facts``; bump ``version`` and return the names of the links that changed
        (plus "pci_functions") when they differ from the previous facts."""
        by_ifindex: dict[int, list[dict]] = {}
        for (ifindex, _family), entries in sorted(self._addresses.items()):
            by_ifindex.setdefault(ifindex, []).extend(entries)
        links = join_links(
            self._links, by_ifindex, self._default[4], self._default[6], self._devices, self._sysfs
        )
        facts = {"links": links, "pci_functions": self._pci_functions}
        if facts == self.facts:
            return []
        changed = _changed_names(self.facts, facts)
        self.facts = facts
        self.version += 1
        return changed


def _changed_names(before: dict, after: dict) -> list[str]:
    old = {link["ifindex"]: link for link in before["links"]}
    new = {link["ifindex"]: link for link in after["links"]}
    names = sorted(
        {old[i]["name"] for i in old if old[i] != new.get(i)}
        | {new[i]["name"] for i in new if new[i] != old.get(i)}
    )
    if before["pci_functions"] != after["pci_functions"]:
        names.append("pci_functions")
    return names
