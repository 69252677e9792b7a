"""Netlink change notifications: link, address and route events of the current namespace.

The kernel queues a notification on this socket before the syscall that caused it returns, so a
reader that drains the socket right after ``ip link set ...`` returned sees that change. The
datagrams are decoded and applied by netstate.NetState; this module only receives them.
"""

from __future__ import annotations

import errno
import select

from nodeagent.rtnetlink import RECV_BYTES, WATCHED_GROUPS, open_socket

# Room for a burst (a CNI ADD, a bridge with many ports going down) before the kernel drops
# notifications; an overflow costs a full re-read, nothing worse.
EVENT_BUFFER_BYTES = 1 << 20


class EventsLost(Exception):
    """The socket overflowed (ENOBUFS): some notifications were dropped, re-read everything."""


class NetlinkEvents:
    """A socket subscribed to link, address and route notifications.

    Opened in ``__init__`` so it belongs to the network namespace of the caller's thread at that
    moment, and before the first dump, so no change can slip between the dump and the events.
    """

    def __init__(self, buffer_bytes: int = EVENT_BUFFER_BYTES) -> None:
        self._sock = open_socket(WATCHED_GROUPS, rcvbuf=buffer_bytes)
        self._sock.setblocking(False)

    def close(self) -> None:
        self._sock.close()

    def wait(self, timeout: float) -> bool:
        """True when notifications are queued (or the socket failed); waits up to ``timeout``."""
        try:
            ready, _, _ = select.select([self._sock], [], [], timeout)
        except (OSError, ValueError):
            return True
        return bool(ready)

    def drain(self) -> list[bytes]:
        """Every datagram queued now, oldest first; EventsLost if the queue overflowed.

        After EventsLost the socket keeps working: what is queued later is newer than the
        overflow, and a full re-read started after this call returns covers everything older.
        """
        datagrams = []
        lost = False
        while True:
            try:
                datagrams.append(self._sock.recv(RECV_BYTES))
            except BlockingIOError:
                break
            except OSError as error:
                if error.errno != errno.ENOBUFS:
                    raise
                lost = True  # keep draining: what is queued now predates the re-read as well
        if lost:
            raise EventsLost()
        return datagrams
