"""Has the inventory changed? A count of the commits that changed what fleet-wide admission
reviews read, told by PostgreSQL (read/classes.py caches on it).

Statement triggers on the interface, node, reservation and team tables (migrations 0015 and
0018) send NOTIFY nicportal_inventory; PostgreSQL delivers them when the writing transaction
commits, in commit order, identical payloads of one transaction folded into one (a transaction
that wrote different rows in several statements sends one per distinct payload, and is fully
told once the last of them is read). One daemon thread per process holds its own connection
(not Django's: it sits in LISTEN for the life of the process) and bumps `generation` on every
notification, and also whenever it (re)connects or fails, since notifications may have been
missed meanwhile. An answer computed from a read that started at generation G is still true
while the generation is G.

`healthy` is True only while the thread is LISTENing in this very process (a forked worker
starts its own thread on first use) and the server answered its SELECT 1 (sent every WAIT
seconds) within SILENT_AFTER; while it is False nobody may trust a cached answer.

Each notification names what its commit changed (migration 0018): interface ids ("i:1,2"),
node ids ("n:3"), or everything (""). The listener keeps what each of the last LOG_GENERATIONS
generations changed (LOG_IDS ids at most; `changed_between`), so a cached answer can be patched
with just those rows. A generation moved by anything else (a (re)connection, a failure, a
silence, a fork, a notification it cannot read) is not logged, nor is one forgotten: an answer
older than it must be read again in full.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass

import psycopg
from django.db import connections

log = logging.getLogger(__name__)

CHANNEL = "nicportal_inventory"
WAIT = 0.5  # seconds between checks of a stop request (and of the connection, SELECT 1)
BACKOFF = (0.5, 30.0)  # first and longest wait before reconnecting after a failure
APPLICATION_NAME = "nicportal-changes"
DEAD_AFTER = 10.0  # seconds without an answer from the server before the connection is dropped
# Seconds since the server last answered the thread's SELECT 1 after which it is not trusted
# (unhealthy until it answers again, and then the generation moves on): a connection that
# hangs stops cached answers within this, long before TCP gives up on it.
SILENT_AFTER = 3.0
LOG_GENERATIONS = 4096  # generations whose changed ids are kept, at most
LOG_IDS = 100_000  # ids kept over those generations, at most (the oldest are forgotten first)


@dataclass(frozen=True, slots=True)
class Changed:
    """What the commits of some generations changed: interface ids and node ids."""

    interfaces: frozenset[int]
    nodes: frozenset[int]


def parse(payload: str) -> Changed | None:
    """The change a notification's payload names; None for everything (an empty payload, or
    anything this code cannot read)."""
    kind, _, ids = payload.partition(":")
    if kind not in ("i", "n") or not ids:
        return None
    try:
        found = frozenset(int(i) for i in ids.split(","))
    except ValueError:
        return None
    return Changed(found, frozenset()) if kind == "i" else Changed(frozenset(), found)


def connection_params() -> dict:
    """psycopg.connect() arguments for the default database, as Django connects to it (name,
    user, password, host, port, OPTIONS such as connect_timeout and statement_timeout), without
    Django's own cursor and adapter classes."""
    params = connections["default"].get_connection_params()
    for django_only in ("cursor_factory", "context", "prepare_threshold"):
        params.pop(django_only, None)
    params["application_name"] = APPLICATION_NAME
    # A cut network must not leave the thread "healthy" for TCP's retransmission time (minutes)
    # while commits go unnoticed: its SELECT 1 every WAIT seconds fails once unacknowledged for
    # DEAD_AFTER, and keepalives probe an idle socket.
    params.setdefault("tcp_user_timeout", int(DEAD_AFTER * 1000))
    params.setdefault("keepalives", 1)
    params.setdefault("keepalives_idle", 5)
    params.setdefault("keepalives_interval", 2)
    params.setdefault("keepalives_count", 3)
    return params


class Listener:
    """The per-process listener; `LISTENER` below is the one everybody uses."""

    def __init__(self) -> None:
        self._init_state()
        self._generation = 0

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._pid = os.getpid()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._listening = False
        self._answered_at = 0.0  # time.monotonic() of the server's last answer
        # (generation, what it changed) of notifications that named it, oldest first.
        self._log: deque[tuple[int, Changed]] = deque()
        self._logged = 0  # ids in _log
        self.backend_pid = 0  # the listening connection's server process (tests end it)

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def healthy(self) -> bool:
        return (
            self._listening
            and self._pid == os.getpid()
            and time.monotonic() - self._answered_at < SILENT_AFTER
        )

    def start(self) -> bool:
        """Start the thread in this process unless it runs (thread-safe; cheap when it runs).
        Returns `healthy`: False until the thread is LISTENing."""
        if self._pid != os.getpid():
            self._after_fork()
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._stopping = threading.Event()  # this thread's own
                    self._thread = threading.Thread(
                        target=self._run,
                        args=(self._stopping,),
                        name="inventory-changes",
                        daemon=True,
                    )
                    self._thread.start()
        return self.healthy

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its connection (tests, and before the database is dropped).
        A later start() starts a new one."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._stopping.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        self._bump(listening=False)

    def wait_for(self, generation: int, timeout: float) -> bool:
        """Wait until the generation is past `generation` (at most `timeout` seconds)."""
        with self._changed:
            return self._changed.wait_for(lambda: self._generation > generation, timeout)

    def wait_healthy(self, timeout: float) -> bool:
        """Start if needed and wait until LISTENing (at most `timeout` seconds)."""
        self.start()
        with self._changed:
            return self._changed.wait_for(lambda: self.healthy, timeout)

    def changed_between(self, since: int, until: int) -> Changed | None:
        """What the generations after `since` up to `until` changed, when every one of them
        was a notification that named its rows; None otherwise (read everything)."""
        if until < since:
            return None
        if until == since:
            return Changed(frozenset(), frozenset())
        interfaces: set[int] = set()
        nodes: set[int] = set()
        seen = 0
        with self._lock:
            for generation, changed in reversed(self._log):
                if generation <= since:
                    break
                if generation <= until:
                    seen += 1
                    interfaces |= changed.interfaces
                    nodes |= changed.nodes
        if seen != until - since:
            return None  # a generation moved without naming its rows, or no longer logged
        return Changed(frozenset(interfaces), frozenset(nodes))

    def _bump(
        self,
        *,
        listening: bool | None = None,
        by: threading.Event | None = None,
        changed: Changed | None = None,
    ) -> None:
        """Move the generation on; set `listening` too unless `by` (a thread's stop event) is
        not the current thread's (a thread stopped by stop() no longer speaks for the process).
        `changed`: what the new generation changed (logged before the generation moves, so a
        reader that sees the generation finds its entry); None: not known."""
        with self._changed:
            if changed is not None:
                self._log.append((self._generation + 1, changed))
                self._logged += len(changed.interfaces) + len(changed.nodes)
                while len(self._log) > LOG_GENERATIONS or self._logged > LOG_IDS:
                    _, old = self._log.popleft()  # its generation: read in full from now on
                    self._logged -= len(old.interfaces) + len(old.nodes)
            self._generation += 1
            if listening is not None and (by is None or by is self._stopping):
                self._listening = listening
            self._changed.notify_all()

    def _answered(self) -> None:
        """The server answered: trusted again; after a silence (unhealthy meanwhile, and
        notifications may be queued behind the answer) with a new generation."""
        now = time.monotonic()
        if now - self._answered_at >= SILENT_AFTER:
            self._bump()
        self._answered_at = now

    def _after_fork(self) -> None:
        """A forked child inherits the parent's state, not its thread: start afresh (the
        generation goes on from the parent's, so no entry cached before the fork is served)."""
        self._init_state()
        self._generation += 1

    def _run(self, stopping: threading.Event) -> None:
        delay = BACKOFF[0]
        while not stopping.is_set():
            try:
                with psycopg.connect(**connection_params(), autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    self.backend_pid = conn.info.backend_pid
                    self._answered_at = time.monotonic()
                    self._bump(listening=True, by=stopping)
                    log.info("listening for inventory changes (backend pid %d)", self.backend_pid)
                    delay = BACKOFF[0]
                    while not stopping.is_set():
                        for notify in conn.notifies(timeout=WAIT):
                            self._bump(changed=parse(notify.payload))
                            self._answered()  # the server speaks: a stream of them is no silence
                        # A dead server or a cut connection shows here, not only on the next
                        # notification (notifications arriving meanwhile are kept by psycopg).
                        conn.execute("SELECT 1")
                        self._answered()
            except Exception as exc:  # noqa: BLE001 - any failure: unhealthy, reconnect
                if not stopping.is_set():
                    log.warning(
                        "inventory change listener failed (%s: %s); cached admission answers "
                        "unused until it reconnects in %.1f s",
                        type(exc).__name__,
                        exc,
                        delay,
                    )
            finally:
                self._bump(listening=False, by=stopping)
            if stopping.wait(delay):
                break
            delay = min(delay * 2, BACKOFF[1])


LISTENER = Listener()
os.register_at_fork(after_in_child=LISTENER._after_fork)
