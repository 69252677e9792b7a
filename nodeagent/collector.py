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
  over a pipe (JSON lines); it also forwards netlink change events. The parent keeps its HTTP
  socket and hint POSTs in the host namespace and never imports pyroute2 (less memory).
- A child holds a reference on the namespace. When ``/run/netns/NAME`` disappears the parent
  stops the child (so the namespace can really go away) and answers 503 until it comes back; a
  namespace re-created under the same name (new inode) gets a new child.

Both collectors cache the facts until a netlink event arrives or FACTS_MAX_AGE passes: a dump
through pyroute2 costs ~10 ms for 64 links, events are rare, and the age bound covers the
sysfs-only facts (a function bound to vfio-pci elsewhere) and the few netlink changes the
kernel does not announce (an alias set on a link that is down) that raise no event here.
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

from nodeagent.changes import NetlinkMonitor
from nodeagent.logs import log
from nodeagent.sysfs import Sysfs

FACTS_MAX_AGE = 5.0
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
    """Facts of the namespace this process runs in."""

    def __init__(
        self,
        sysfs_root: str = "/sys",
        on_change: Callable[[], None] | None = None,
        max_age: float = FACTS_MAX_AGE,
        pci_scan: bool = True,
    ) -> None:
        from pyroute2 import IPRoute  # imported here: the --netns parent never needs it

        self._sysfs = Sysfs(sysfs_root)
        self._pci_scan = pci_scan
        self._on_change = on_change
        self._max_age = max_age
        self._lock = threading.Lock()
        # The generation has its own lock: a change must be recorded even while a (slow) dump
        # holds the main lock, or that dump's result would be cached as current.
        self._generation_lock = threading.Lock()
        self._generation = 0
        self._cached: tuple[int, float, dict] | None = None
        # The monitor opens its socket before the first dump, so no change can slip between.
        self._monitor = NetlinkMonitor(self._changed)
        self._ipr = IPRoute()
        self.collections = 0

    def start(self) -> None:
        self._monitor.start()

    def stop(self) -> None:
        self._monitor.stop()
        self._ipr.close()

    def _changed(self) -> None:
        with self._generation_lock:
            self._generation += 1
        if self._on_change:
            self._on_change()

    def facts(self) -> dict:
        from nodeagent.facts import assemble, read_netlink

        with self._lock:
            with self._generation_lock:
                generation = self._generation
            now = time.monotonic()
            cached = self._cached
            fresh = cached and cached[0] == generation and now - cached[1] < self._max_age
            if fresh and not self._monitor.has_pending():
                return cached[2]
            links, pci_functions = assemble(
                *read_netlink(self._ipr), self._sysfs, pci_scan=self._pci_scan
            )
            self.collections += 1
            result = {"links": links, "pci_functions": pci_functions}
            self._cached = (generation, now, result)
            return result


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
        with self._lock:
            self._ensure_worker()
            proc = self._proc
            try:
                proc.stdin.write(b'{"op": "facts"}\n')
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
            return reply["facts"]
