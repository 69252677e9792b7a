"""rtnetlink over a plain stdlib socket: dumps and change notifications, decoded into plain dicts.

Why not pyroute2 here: pyroute2 0.9 drives every received message through an asyncio event loop
and decodes every attribute of it. Dumping 65 links, their addresses and the routes that way took
25-45 ms on the 2-core CI machine, most of a snapshot's cost after a change. The snapshot needs a
dozen attributes; decoding just those with ``struct`` takes well under a millisecond, and the
same decoder reads the change notifications the agent applies incrementally (netstate.py).

Message layouts are the kernel's UAPI (linux/netlink.h, linux/rtnetlink.h, linux/if_link.h,
linux/if_addr.h); attribute numbers below are ABI and never change.
"""

from __future__ import annotations

import errno
import itertools
import socket
import struct
from collections.abc import Iterator

NLMSG = struct.Struct("=IHHII")  # len, type, flags, seq, pid
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBi")  # family, prefixlen, flags, scope, index
RTMSG = struct.Struct(
    "=BBBBBBBBI"
)  # family, dst_len, src_len, tos, table, proto, scope, type, flags
RTATTR = struct.Struct("=HH")  # len, type
RTNEXTHOP = struct.Struct("=HBBi")  # len, flags, hops, ifindex
U32 = struct.Struct("=I")
I32 = struct.Struct("=i")

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300
SOL_NETLINK = 270
NETLINK_GET_STRICT_CHK = 12

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWROUTE, RTM_DELROUTE, RTM_GETROUTE = 24, 25, 26

IFLA_ADDRESS = 1
IFLA_IFNAME = 3
IFLA_MTU = 4
IFLA_MASTER = 10
IFLA_OPERSTATE = 16
IFLA_LINKINFO = 18
IFLA_INFO_KIND = 1
IFLA_IFALIAS = 20
IFLA_CARRIER = 33
IFLA_PROP_LIST = 52
IFLA_ALT_IFNAME = 53
IFLA_PERM_ADDRESS = 54
IFA_ADDRESS = 1
IFA_LOCAL = 2
RTA_OIF = 4
RTA_MULTIPATH = 9
RTA_TABLE = 15
NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED / NLA_F_NET_BYTEORDER
_LINK_ATTRS = frozenset(
    (
        IFLA_ADDRESS,
        IFLA_IFNAME,
        IFLA_MTU,
        IFLA_MASTER,
        IFLA_OPERSTATE,
        IFLA_LINKINFO,
        IFLA_IFALIAS,
        IFLA_CARRIER,
        IFLA_PROP_LIST,
        IFLA_PERM_ADDRESS,
    )
)

RT_TABLE_MAIN = 254
RTN_UNICAST = 1

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
WATCHED_GROUPS = (
    RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
)

# IF_OPER_* in the kernel's order, as /sys/class/net/*/operstate spells them.
OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")
_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}
_FAMILIES = {socket.AF_INET: 4, socket.AF_INET6: 6}
# A dump is retried when the kernel flags it inconsistent (a change raced it).
DUMP_ATTEMPTS = 5
RECV_BYTES = 1 << 16  # a dump's datagrams are at most 32 KiB; notifications far smaller


class DumpInterrupted(OSError):
    """The kernel kept flagging the dump as inconsistent (NLM_F_DUMP_INTR)."""


def _attrs(data: bytes, offset: int, end: int, wanted: frozenset[int] | None = None) -> dict:
    """{type: payload} of the attributes in ``data[offset:end]`` (only ``wanted`` ones if given:
    a link message carries ~50 attributes, mostly counters, and slicing them all is what costs)."""
    found = {}
    unpack = RTATTR.unpack_from
    while offset + 4 <= end:
        length, kind = unpack(data, offset)
        if length < 4 or offset + length > end:
            break
        kind &= NLA_TYPE_MASK
        if wanted is None or kind in wanted:
            found[kind] = data[offset + 4 : offset + length]
        offset += (length + 3) & ~3
    return found


def _attr_list(data: bytes, wanted: int) -> list[bytes]:
    """Every payload of type ``wanted`` in a nested attribute (repeated ones, e.g. altnames)."""
    found = []
    offset = 0
    while offset + 4 <= len(data):
        length, kind = RTATTR.unpack_from(data, offset)
        if length < 4 or offset + length > len(data):
            break
        if kind & NLA_TYPE_MASK == wanted:
            found.append(data[offset + 4 : offset + length])
        offset += (length + 3) & ~3
    return found


def _string(value: bytes) -> str:
    return value.split(b"\0", 1)[0].decode("utf-8", errors="replace")


def _hardware_address(value: bytes | None) -> str | None:
    # Loopback and L3 tunnels report an all-zero hardware address; it identifies nothing.
    if not value or not any(value):
        return None
    return ":".join(f"{byte:02x}" for byte in value)


def decode_link(data: bytes, offset: int, end: int) -> dict:
    """An RTM_NEWLINK/RTM_DELLINK body (after the nlmsghdr) as the snapshot's raw link dict."""
    _family, _type, index, flags, _change = IFINFOMSG.unpack_from(data, offset)
    attrs = _attrs(data, offset + IFINFOMSG.size, end, _LINK_ATTRS)
    info_kind = None
    if IFLA_LINKINFO in attrs:
        kinds = _attr_list(attrs[IFLA_LINKINFO], IFLA_INFO_KIND)
        info_kind = _string(kinds[0]) if kinds else None
    altnames = []
    if IFLA_PROP_LIST in attrs:
        altnames = [_string(v) for v in _attr_list(attrs[IFLA_PROP_LIST], IFLA_ALT_IFNAME)]
    operstate = attrs.get(IFLA_OPERSTATE)
    mtu = attrs.get(IFLA_MTU)
    master = U32.unpack(attrs[IFLA_MASTER])[0] if IFLA_MASTER in attrs else 0
    carrier = attrs.get(IFLA_CARRIER)
    alias = attrs.get(IFLA_IFALIAS)
    return {
        "ifindex": index,
        "name": _string(attrs.get(IFLA_IFNAME, b"")),
        "flags": flags,
        "info_kind": info_kind,
        "master_ifindex": master or None,
        "operstate": OPERSTATES[operstate[0]]
        if operstate and operstate[0] < len(OPERSTATES)
        else "unknown",
        "carrier": carrier[0] if carrier else None,
        "mtu": U32.unpack(mtu)[0] if mtu else None,
        "mac": _hardware_address(attrs.get(IFLA_ADDRESS)),
        "permanent_mac": _hardware_address(attrs.get(IFLA_PERM_ADDRESS)),
        "altnames": altnames,
        "alias": _string(alias) if alias is not None else None,
    }


def decode_address(data: bytes, offset: int, end: int) -> dict | None:
    """An RTM_NEWADDR/RTM_DELADDR body as the raw address dict; None for non-IP families."""
    family, prefixlen, _flags, scope, index = IFADDRMSG.unpack_from(data, offset)
    if family not in _FAMILIES:
        return None
    attrs = _attrs(data, offset + IFADDRMSG.size, end)
    # For IPv4 IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
    # point-to-point links. IPv6 has only IFA_ADDRESS.
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    return {
        "ifindex": index,
        "family": _FAMILIES[family],
        "address": socket.inet_ntop(family, raw) if raw else None,
        "prefixlen": prefixlen,
        "scope": _SCOPES.get(scope, str(scope)),
    }


def route_header(data: bytes, offset: int) -> tuple[int, int, int, int]:
    """(family, dst_len, table, type) from an rtmsg, without decoding any attribute."""
    family, dst_len, _src, _tos, table, _proto, _scope, rtype, _flags = RTMSG.unpack_from(
        data, offset
    )
    return family, dst_len, table, rtype


def default_route_oifs(data: bytes, offset: int, end: int) -> set[int] | None:
    """The output links of a main-table unicast default route; None for any other route."""
    family, dst_len, table, rtype = route_header(data, offset)
    if dst_len != 0 or rtype != RTN_UNICAST:
        return None
    attrs = _attrs(data, offset + RTMSG.size, end)
    if RTA_TABLE in attrs:
        table = U32.unpack(attrs[RTA_TABLE])[0]
    if table != RT_TABLE_MAIN:
        return None
    found: set[int] = set()
    if RTA_OIF in attrs:
        oif = U32.unpack(attrs[RTA_OIF])[0]
        if oif:
            found.add(oif)
    hops = attrs.get(RTA_MULTIPATH, b"")
    position = 0
    while position + RTNEXTHOP.size <= len(hops):
        length, _flags, _hops, ifindex = RTNEXTHOP.unpack_from(hops, position)
        if length < RTNEXTHOP.size:
            break
        if ifindex:
            found.add(ifindex)
        position += (length + 3) & ~3
    return found


def messages(data: bytes) -> Iterator[tuple[int, int, int, int, int]]:
    """(type, flags, seq, body offset, end) of each netlink message in one datagram."""
    offset = 0
    size = len(data)
    while offset + NLMSG.size <= size:
        length, kind, flags, seq, _pid = NLMSG.unpack_from(data, offset)
        if length < NLMSG.size or offset + length > size:
            return
        yield kind, flags, seq, offset + NLMSG.size, offset + length
        offset += (length + 3) & ~3


def open_socket(groups: int = 0, rcvbuf: int | None = None) -> socket.socket:
    """A NETLINK_ROUTE socket in the caller's network namespace (its thread's, to be exact)."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    try:
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, groups))
    except OSError:
        sock.close()
        raise
    return sock


class RtnlDumper:
    """Dumps links, addresses and main-table default routes through one unsubscribed socket.

    With NETLINK_GET_STRICT_CHK (Linux 4.20+) the kernel filters address dumps by link and route
    dumps by table, so a change to one link re-reads that link's addresses only; older kernels
    dump everything and the filter is applied here.
    """

    def __init__(self) -> None:
        self._sock = open_socket()
        try:
            self._sock.setsockopt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1)
            self.strict = True
        except OSError:
            self.strict = False
        self._seq = itertools.count(1)

    def close(self) -> None:
        self._sock.close()

    def _dump(self, msg_type: int, body: bytes) -> Iterator[tuple[bytes, int, int, int]]:
        """Yields (datagram, type, body offset, end) of a complete, consistent dump."""
        for _ in range(DUMP_ATTEMPTS):
            seq = next(self._seq)
            header = NLMSG.pack(
                NLMSG.size + len(body), msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
            )
            self._sock.send(header + body)
            found: list[tuple[bytes, int, int, int]] = []
            interrupted = False
            done = False
            while not done:
                data = self._sock.recv(RECV_BYTES)
                for kind, flags, msg_seq, offset, end in messages(data):
                    if msg_seq != seq:
                        continue  # the answer to an earlier, abandoned request
                    if flags & NLM_F_DUMP_INTR:
                        interrupted = True
                    if kind == NLMSG_DONE:
                        code = I32.unpack_from(data, offset)[0] if end - offset >= 4 else 0
                        if code < 0:
                            raise OSError(-code, f"netlink dump failed: {errno.errorcode[-code]}")
                        done = True
                        break
                    if kind == NLMSG_ERROR:
                        code = I32.unpack_from(data, offset)[0]
                        if code < 0:
                            raise OSError(-code, f"netlink dump refused: {errno.errorcode[-code]}")
                        done = True
                        break
                    if kind in (NLMSG_NOOP, NLMSG_OVERRUN):
                        continue
                    found.append((data, kind, offset, end))
            if not interrupted:
                yield from found
                return
        raise DumpInterrupted(errno.EAGAIN, "netlink dump kept changing under us")

    def link(self, ifindex: int) -> dict | None:
        """One link's current state (RTM_GETLINK by index); None if there is no such link."""
        seq = next(self._seq)
        body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, ifindex, 0, 0)
        self._sock.send(
            NLMSG.pack(NLMSG.size + len(body), RTM_GETLINK, NLM_F_REQUEST, seq, 0) + body
        )
        while True:
            data = self._sock.recv(RECV_BYTES)
            for kind, _flags, msg_seq, offset, end in messages(data):
                if msg_seq != seq:
                    continue
                if kind == NLMSG_ERROR:
                    code = I32.unpack_from(data, offset)[0]
                    if code in (-errno.ENODEV, 0):
                        return None
                    raise OSError(-code, f"netlink get failed: {errno.errorcode[-code]}")
                if kind == RTM_NEWLINK:
                    return decode_link(data, offset, end)

    def links(self) -> list[dict]:
        body = IFINFOMSG.pack(socket.AF_UNSPEC, 0, 0, 0, 0)
        return [
            decode_link(data, offset, end)
            for data, kind, offset, end in self._dump(RTM_GETLINK, body)
            if kind == RTM_NEWLINK
        ]

    def addresses(self, family: int, ifindex: int = 0) -> list[dict]:
        """Addresses of one family (AF_INET/AF_INET6), of one link if ``ifindex``, in the
        kernel's order (the order ``ip addr`` shows)."""
        body = IFADDRMSG.pack(family, 0, 0, 0, ifindex if self.strict else 0)
        try:
            found = [
                decode_address(data, offset, end)
                for data, kind, offset, end in self._dump(RTM_GETADDR, body)
                if kind == RTM_NEWADDR
            ]
        except OSError as error:
            if ifindex and error.errno == errno.ENODEV:
                return []  # the link is gone already; its deletion is queued for us
            raise
        return [a for a in found if a is not None and (not ifindex or a["ifindex"] == ifindex)]

    def default_route_ifindexes(self, family: int) -> set[int]:
        body = RTMSG.pack(family, 0, 0, 0, RT_TABLE_MAIN if self.strict else 0, 0, 0, 0, 0)
        found: set[int] = set()
        try:
            for data, kind, offset, end in self._dump(RTM_GETROUTE, body):
                if kind == RTM_NEWROUTE:
                    found |= default_route_oifs(data, offset, end) or set()
        except OSError as error:
            if self.strict and error.errno == errno.ENOENT:
                return set()  # the main table does not exist yet: no route was ever added
            raise
        return found
