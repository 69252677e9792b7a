"""Netlink change notifications: link, address and route events of the current namespace.

A plain stdlib AF_NETLINK socket is enough here: the agent does not need to parse the events,
only to know that something changed (to drop the cached facts and to hint the portal). Dumps are
re-read through pyroute2 anyway. ENOBUFS (a burst overflowed the socket) also means "changed".
"""

from __future__ import annotations

import errno
import select
import socket
import threading
from collections.abc import Callable

from nodeagent.logs import log

RTMGRP_LINK = 0x1
RTMGRP_IPV4_IFADDR = 0x10
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_IFADDR = 0x100
RTMGRP_IPV6_ROUTE = 0x400
WATCHED_GROUPS = (
    RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_IFADDR | RTMGRP_IPV6_ROUTE
)


class NetlinkMonitor:
    """Calls ``on_change()`` (from its own thread) for each burst of netlink events.

    The socket is opened in ``__init__`` so it belongs to the network namespace of the caller's
    thread at that moment.
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        self._on_change = on_change
        self._sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self._sock.bind((0, WATCHED_GROUPS))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="netlink-monitor", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self._sock.close()

    def has_pending(self) -> bool:
        """True if events are queued that the monitor thread has not picked up yet.

        The kernel queues the notification before the changing syscall returns, so a snapshot
        taken right after ``ip link set ...`` returned sees it here even if this thread sleeps.
        """
        try:
            ready, _, _ = select.select([self._sock], [], [], 0)
        except (OSError, ValueError):
            return True
        return bool(ready)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._sock], [], [], 0.5)
                if not ready:
                    continue
                # Report before draining as well as after: a reader that finds the queue empty
                # (has_pending() False) must already see the change counted, and a message that
                # arrives while we drain is counted by the call after the loop.
                self._on_change()
                # Drain everything queued now: one burst, not one callback per message.
                while True:
                    try:
                        self._sock.recv(1 << 16, socket.MSG_DONTWAIT)
                    except BlockingIOError:
                        break
            except OSError as error:
                if self._stop.is_set():
                    return
                if error.errno != errno.ENOBUFS:
                    log("error", "netlink_monitor_failed", error=error)
                    self._stop.wait(1)
            self._on_change()
