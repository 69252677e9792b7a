"""Where facts come from: the agent's own namespace, or another one (``--netns``).

Design for ``--netns`` (why a child process):
- netlink is easy to aim at another namespace (a socket opened after setns stays there), but
  sysfs is not: /sys/class/net and /sys/bus/pci/devices/*/net show the links of the namespace
  that *mounted* that sysfs. The host's /sys shows the host's links, so PCI/driver/speed facts of
  the watched namespace can only be read from a sysfs mounted from inside it.
- Mounting needs a private mount namespace, and unshare(CLONE_NEWNS) is refused in a
  multi-threaded process; setns(CLONE_NEWNET) only moves the calling thread. Doing this inside
  the agent would put its HTTP socket, hint POSTs and every later thread at risk of landing in
  the wrong namespace.
- So, like ``ip netns exec``, a persistent single-purpose child (``nodeagent.netns_worker``)
  enters the namespace, remounts sysfs in its own mount namespace, and answers "facts?" requests
  over a pipe (JSON lines); it also forwards "changed" notices. The parent keeps its HTTP
  socket and hint POSTs in the host namespace and opens no netlink socket at all.
- A child holds a reference on the namespace. When ``/run/netns/NAME`` disappears the parent
  stops the child (so the namespace can really go away) and answers 503 until it comes back; a
  namespace re-created under the same name (new inode) gets a new child.

Facts are kept current from netlink notifications (netstate.py): the first request after a
change applies what the change announced instead of re-reading every link, and a full re-read
every RESYNC_INTERVAL seconds (in the background, never on a request) catches what the kernel
does not announce (an alias set on a link that is down, a function rebound to vfio-pci, SR-IOV
counts in sysfs) and would repair any drift. In ``--netns`` mode the parent keeps the last
facts and their version, and the worker sends facts only when they changed.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable

from nodeagent.changes import EVENT_BUFFER_BYTES, EventsLost, NetlinkEvents
from nodeagent.logs import log
from nodeagent.netstate import NetState
from nodeagent.rtnetlink import RtnlDumper
from nodeagent.sysfs import Sysfs

RESYNC_INTERVAL = 5.0
NETNS_RUN_DIR = "/run/netns"
WORKER_REPLY_TIMEOUT = 15.0
WATCHDOG_INTERVAL = 1.0


class CollectorError(Exception):
    """Facts could not be collected right now (answered as 503)."""

    code = "collector_error"


class NamespaceMissing(CollectorError):
    """The watched network namespace does not exist (never created, or deleted)."""

    code = "netns_missing"


class LocalCollector:
    """Facts of the namespace this process runs in, kept current from netlink notifications.

    One lock serialises the state: a request applies whatever is queued before it answers (so it
    sees a change whose syscall has returned), and the background thread applies notifications
    as they come (so hints go out without a request) and does the periodic full re-read.
    ``on_change`` is called, under that lock, whenever the facts changed.
    """

    def __init__(
        self,
        sysfs_root: str = "/sys",
        on_change: Callable[[], None] | None = None,
        resync_interval: float = RESYNC_INTERVAL,
        pci_scan: bool = True,
        event_buffer_bytes: int = EVENT_BUFFER_BYTES,
    ) -> None:
        self._on_change = on_change
        self._resync_interval = resync_interval
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # Subscribed before the first dump, so no change can slip between the two.
        self._events = NetlinkEvents(event_buffer_bytes)
        self._dumper = RtnlDumper()
        self._state = NetState(self._dumper, Sysfs(sysfs_root), pci_scan=pci_scan)
        self._thread = threading.Thread(target=self._run, name="netlink-state", daemon=True)
        self._needs_reload = False
        self.full_reads = 0
        self.resyncs_with_changes = 0

    def start(self) -> None:
        try:
            with self._lock:
                self._reload("start")
        except OSError as error:
            raise CollectorError(f"reading netlink failed: {error}") from error
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=3)
        self._events.close()
        self._dumper.close()

    def current(self) -> tuple[int, dict]:
        """(version, facts) as of now: every change whose syscall returned is included. The
        facts object is never modified once handed out; a change makes a new one."""
        with self._lock:
            try:
                self._catch_up()
            except OSError as error:
                raise CollectorError(f"reading netlink failed: {error}") from error
            return self._state.version, self._state.facts

    def facts(self) -> dict:
        return self.current()[1]

    @property
    def applied_messages(self) -> int:
        return self._state.applied_messages

    # -- callers hold self._lock --

    def _catch_up(self) -> None:
        try:
            datagrams = self._events.drain()
        except EventsLost:
            log("warning", "netlink_events_lost", action="full re-read")
            self._needs_reload = True
        if self._needs_reload:
            # After lost notifications, or an apply that failed half-way (its notifications
            # are drained and the state may be half-updated): only a full read is sure.
            self._reload("recover")
            self._needs_reload = False
            return
        if not datagrams:
            return
        try:
            changed = self._state.apply(datagrams)
        except OSError:
            self._needs_reload = True
            raise
        if changed:
            self._changed()

    def _reload(self, reason: str) -> list[str]:
        changed = self._state.reload()
        self.full_reads += 1
        if changed and reason == "resync":
            # Either the kernel announced nothing (see the module docstring) or the incremental
            # state drifted: worth knowing either way.
            self.resyncs_with_changes += 1
            log("info", "resync_changed", changed=",".join(changed)[:200])
        if changed and reason != "start":
            self._changed()
        return changed

    def _changed(self) -> None:
        if self._on_change:
            self._on_change()

    # -- background thread --

    def _run(self) -> None:
        next_resync = time.monotonic() + self._resync_interval
        while not self._stop.is_set():
            timeout = max(0.0, min(0.5, next_resync - time.monotonic()))
            try:
                ready = self._events.wait(timeout)
                with self._lock:
                    if ready:
                        self._catch_up()
                    if time.monotonic() >= next_resync:
                        self._catch_up()
                        self._reload("resync")
                        next_resync = time.monotonic() + self._resync_interval
            except OSError as error:
                if self._stop.is_set():
                    return
                log("error", "netlink_state_failed", error=error)
                self._stop.wait(1)


def _namespace_inode(name: str) -> int | None:
    try:
        return os.stat(os.path.join(NETNS_RUN_DIR, name)).st_ino
    except OSError:
        return None


class NetnsCollector:
    """Facts of a named network namespace, read by a child process living in it."""

    def __init__(
        self,
        netns: str,
        sysfs_root: str = "/sys",
        on_change: Callable[[], None] | None = None,
        pci_scan: bool = True,
    ) -> None:
        self.netns = netns
        self._sysfs_root = sysfs_root
        self._pci_scan = pci_scan
        self._on_change = on_change
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._replies: queue.Queue = queue.Queue()
        self._inode: int | None = None
        # The last facts the worker sent and their version; the worker's versions count from
        # its start, so a new worker starts a new cache.
        self._cached: tuple[int, dict] | None = None
        self._vanished_logged = False
        self._stop = threading.Event()
        self._watchdog = threading.Thread(target=self._watch, name="netns-watchdog", daemon=True)

    def start(self) -> None:
        """Start the worker; NamespaceMissing if the namespace does not exist (never created)."""
        with self._lock:
            self._spawn()
        self._watchdog.start()

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            self._kill()

    # -- child process management (callers hold self._lock) --

    def _spawn(self) -> None:
        if _namespace_inode(self.netns) is None:
            raise NamespaceMissing(f"network namespace {self.netns!r} does not exist")
        self._replies = queue.Queue()
        proc = subprocess.Popen(
            [sys.executable, "-m", "nodeagent.netns_worker", "--netns", self.netns]
            + ["--sysfs-root", self._sysfs_root]
            + ([] if self._pci_scan else ["--no-pci-scan"]),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            close_fds=True,
        )
        self._proc = proc
        self._cached = None
        threading.Thread(
            target=self._read_replies, args=(proc, self._replies), name="netns-reader", daemon=True
        ).start()
        hello = self._reply(proc)
        if not hello.get("ready"):
            self._kill()
            raise NamespaceMissing(hello.get("error") or f"cannot enter {self.netns!r}")
        self._inode = hello["netns_inode"]
        self._vanished_logged = False
        log("info", "netns_worker_started", netns=self.netns, pid=proc.pid, inode=self._inode)

    def _kill(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        try:
            proc.stdin.close()
        except OSError:
            pass
        proc.terminate()
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=3)

    def _read_replies(self, proc: subprocess.Popen, replies: queue.Queue) -> None:
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if message.get("event") == "changed":
                if self._on_change:
                    self._on_change()
            else:
                replies.put(message)
        replies.put({"ok": False, "error": "netns worker exited"})

    def _reply(self, proc: subprocess.Popen) -> dict:
        try:
            return self._replies.get(timeout=WORKER_REPLY_TIMEOUT)
        except queue.Empty:
            self._kill()
            raise CollectorError(f"netns worker for {self.netns!r} did not answer") from None

    def _namespace_state(self) -> str:
        inode = _namespace_inode(self.netns)
        if inode is None:
            return "missing"
        return "same" if inode == self._inode else "replaced"

    def _ensure_worker(self) -> None:
        state = self._namespace_state()
        if state == "missing":
            if self._proc is not None or not self._vanished_logged:
                log("error", "netns_vanished", netns=self.netns)
                self._vanished_logged = True
            self._kill()
            raise NamespaceMissing(f"network namespace {self.netns!r} no longer exists")
        if state == "replaced" and self._proc is not None:
            log("warning", "netns_replaced", netns=self.netns)
            self._kill()
        if self._proc is None or self._proc.poll() is not None:
            if self._proc is not None:
                log("warning", "netns_worker_died", netns=self.netns, code=self._proc.returncode)
            self._kill()
            self._spawn()

    def _watch(self) -> None:
        # Releases the namespace promptly when it is deleted, even if nobody asks for facts.
        while not self._stop.wait(WATCHDOG_INTERVAL):
            with self._lock:
                if self._proc is not None and self._namespace_state() == "missing":
                    try:
                        self._ensure_worker()
                    except CollectorError:
                        pass

    def facts(self) -> dict:
        """The worker's facts as of now; it sends them only when their version moved on, so an
        unchanged namespace yields the same object again."""
        with self._lock:
            self._ensure_worker()
            proc = self._proc
            have = self._cached[0] if self._cached else None
            try:
                proc.stdin.write(json.dumps({"op": "facts", "have": have}).encode() + b"\n")
                proc.stdin.flush()
            except OSError:
                self._kill()
                raise CollectorError(f"netns worker for {self.netns!r} is gone") from None
            reply = self._reply(proc)
            if not reply.get("ok"):
                if self._namespace_state() == "missing":
                    self._kill()
                    raise NamespaceMissing(f"network namespace {self.netns!r} no longer exists")
                raise CollectorError(reply.get("error") or "netns worker failed")
            if "facts" in reply:
                self._cached = (reply["version"], reply["facts"])
            elif self._cached is None or self._cached[0] != reply["version"]:
                raise CollectorError("netns worker answered without facts")  # protocol bug
            return self._cached[1]
