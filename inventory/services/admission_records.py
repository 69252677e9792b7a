"""Denial records (AdmissionRecord: the admission page's would-be denials and denials), written
either by the review itself or, in the webhook server, by one writer thread per process, off the
review's response path.

Why a thread: the record was a denial's second database round trip, on the time the API server
waits for (issue 19's 10 ms p99 goal). The record is a log, not a promise (the webhook server's
sessions already commit it without waiting for the WAL flush), so the review only queues it and
answers; the writer writes it a moment later.

The writer (`WRITER`):
- is started by the first record a process queues, and again in a forked child: the pid it was
  started in is recorded (and os.register_at_fork resets it in a child), so a process that
  forks workers never hands them its thread or its queue, whose records stay its own;
- writes on its own database connection (Django's connections are per thread), kept open;
- is fed by a bounded queue (NICPORTAL_WEBHOOK_RECORD_QUEUE): when it is full (the database
  slow or down) a record is dropped, never waited for, counted in
  nicportal_admission_records_dropped_total{reason="queue_full"} and warned about at most once
  a minute;
- takes everything queued within LINGER of a batch's first record (up to BATCH) and writes it
  as one statement: the records of one object, reason and mode are summed into one row (its
  count moves by how many were queued, its values are the latest), and on PostgreSQL every row
  goes in one INSERT ... ON CONFLICT, in key order (two processes upserting the same rows lock
  them in the same order: no deadlock);
- survives a failed write: it logs it, closes its connection and writes the batch once more on a
  new one (a PostgreSQL restart or a killed session costs nothing); a second failure drops the
  batch (reason="write_failed"), and it goes on with the next;
- is flushed at exit: `flush(timeout)` waits until everything queued so far is written; the
  webhook server's gunicorn calls flush_before_exit when a worker exits
  (nicportal/webhook_gunicorn.py), and an atexit hook does for any other process.

Elsewhere (NICPORTAL_WEBHOOK_RECORD_ASYNC off: the web process, the tests), and for a review
inside a transaction (a test's, a caller's atomic block: its own record visible to it and
rolled back with it), the review writes the record itself, with the same code.
"""

from __future__ import annotations

import atexit
import logging
import os
import queue
import threading
import time
from collections import Counter
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import F

from inventory.models import AdmissionRecord

log = logging.getLogger("inventory.admission")

QUEUE_FULL, WRITE_FAILED = "queue_full", "write_failed"
DROP_REASONS = (QUEUE_FULL, WRITE_FAILED)
BATCH = 500  # records written in one statement at most
LINGER = 0.05  # seconds a batch waits for more records after its first
DROP_WARN_EVERY = 60.0  # seconds between two warnings about dropped records
EXIT_FLUSH_SECONDS = 5.0  # within gunicorn's graceful_timeout (10 s)

KEY = ("cluster", "resource", "namespace", "name", "codes", "enforced")
VALUES = ("operation", "username", "uid", "message", "last_at")


@dataclass(frozen=True)
class Entry:
    """One denial to record: the row's key (KEY) and its values (VALUES; last_at is when the
    review decided)."""

    key: tuple[Any, ...]
    values: tuple[Any, ...]

    @classmethod
    def of(cls, **fields: Any) -> Entry:
        """The entry of these fields (every name of KEY and VALUES)."""
        return cls(tuple(fields[c] for c in KEY), tuple(fields[c] for c in VALUES))

    @property
    def at(self) -> datetime:
        return self.values[VALUES.index("last_at")]


@dataclass
class Row:
    """The records of one key in a batch: how many, the first time, the latest values."""

    key: tuple[Any, ...]
    values: tuple[Any, ...]
    count: int
    first_at: datetime


def rows_of(entries: list[Entry]) -> list[Row]:
    """One row per key, in key order: the count is the number of entries with that key, the
    values the latest entry's (by decision time), first_at the earliest time."""
    rows: dict[tuple[Any, ...], Row] = {}
    for entry in entries:
        row = rows.get(entry.key)
        if row is None:
            rows[entry.key] = Row(entry.key, entry.values, 1, entry.at)
            continue
        row.count += 1
        if entry.at >= row.values[VALUES.index("last_at")]:
            row.values = entry.values
        row.first_at = min(row.first_at, entry.at)
    return [rows[key] for key in sorted(rows)]


_TABLE = AdmissionRecord._meta.db_table
_COLUMNS = (*KEY, *VALUES, "count", "first_at")


def _upsert_sql(rows: int) -> str:
    # Identifiers from the model's own metadata; every value is a parameter.
    one = f"({', '.join(['%s'] * len(_COLUMNS))})"
    return (
        f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) VALUES {', '.join([one] * rows)}"  # noqa: S608
        f" ON CONFLICT ({', '.join(KEY)}) DO UPDATE SET count = {_TABLE}.count + EXCLUDED.count, "
        + ", ".join(f"{column} = EXCLUDED.{column}" for column in VALUES)
    )


def write(entries: list[Entry]) -> None:
    """Add `entries` to their rows on this thread's connection (raises DatabaseError).

    PostgreSQL: one INSERT ... ON CONFLICT for them all, one round trip, no race between two
    servers recording the same object (the unique constraint decides); a key appears once in it
    (PostgreSQL refuses to update a row twice in one statement), with its count. Inside a
    transaction (tests, a caller's atomic block) a savepoint keeps a failure here from breaking
    the caller's transaction. SQLite: per row an UPDATE, and an INSERT the first time."""
    rows = rows_of(entries)
    if not rows:
        return
    if connection.vendor == "postgresql":
        params = [p for row in rows for p in (*row.key, *row.values, row.count, row.first_at)]
        savepoint = transaction.atomic() if connection.in_atomic_block else nullcontext()
        with savepoint, connection.cursor() as cursor:
            cursor.execute(_upsert_sql(len(rows)), params)
        return
    for row in rows:
        key = dict(zip(KEY, row.key, strict=True))
        values = dict(zip(VALUES, row.values, strict=True))
        for _attempt in range(2):
            try:
                with transaction.atomic():
                    if AdmissionRecord.objects.filter(**key).update(
                        count=F("count") + row.count, **values
                    ):
                        break
                    AdmissionRecord.objects.create(
                        **key, **values, count=row.count, first_at=row.first_at
                    )
                break
            except IntegrityError:
                continue  # another process created it first: update that row


def record(entry: Entry) -> None:
    """Record one denial: queued for the writer thread when NICPORTAL_WEBHOOK_RECORD_ASYNC is on
    and the caller is outside a transaction, otherwise written now. Never raises for the
    database: a failure to record never changes a review's answer (logged instead)."""
    if settings.WEBHOOK_RECORD_ASYNC and not connection.in_atomic_block:
        WRITER.put(entry)
        return
    try:
        write([entry])
    except DatabaseError:
        log.exception("admission record failed uid=%s", entry.values[VALUES.index("uid")])


class RecordWriter:
    """The per-process writer thread and its queue; `WRITER` below is the one the reviews use."""

    def __init__(self) -> None:
        self._init_state()

    def _init_state(self) -> None:
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._pid = os.getpid()
        self._queue: queue.Queue[Entry] | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._unwritten = 0  # queued or being written
        self._dropped: Counter[str] = Counter()  # not yet taken by the metrics
        self._unwarned = 0  # dropped since the last warning
        self._warned_at = -DROP_WARN_EVERY
        self.backend_pid = 0  # the writer connection's PostgreSQL backend (tests end it)
        self.written = 0  # records written by the thread, in how many batches and seconds
        self.batches = 0
        self.write_seconds = 0.0

    @property
    def running(self) -> bool:
        """True when this process's writer thread runs."""
        thread = self._thread
        return self._pid == os.getpid() and thread is not None and thread.is_alive()

    def put(self, entry: Entry) -> bool:
        """Queue one record for the thread (started here when it does not run in this process).
        False when the queue was full and the record dropped. Never blocks."""
        if self._pid != os.getpid():
            self._after_fork()
        pending = self._start()
        with self._lock:
            self._unwritten += 1
        try:
            pending.put_nowait(entry)
        except queue.Full:
            with self._idle:
                self._unwritten -= 1
                self._idle.notify_all()
            self._drop(QUEUE_FULL, 1)
            return False
        return True

    def flush(self, timeout: float) -> bool:
        """Wait at most `timeout` seconds until every record this process queued so far is
        written (or dropped). True when none is left."""
        if self._pid != os.getpid():
            return True  # what a parent queued is the parent's to write
        with self._idle:
            return self._idle.wait_for(lambda: self._unwritten <= 0, timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread and close its connection (tests, and before the test database is
        dropped). Records still queued are abandoned: flush() first. A later put() starts a
        new thread."""
        with self._lock:
            thread, self._thread = self._thread, None
            self._queue = None
            self._stopping.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
        with self._idle:
            self._unwritten = 0
            self._idle.notify_all()

    def take_dropped(self) -> Counter[str]:
        """The records dropped since the last call, by reason (for the metrics)."""
        with self._lock:
            dropped, self._dropped = self._dropped, Counter()
        return dropped

    def _start(self) -> queue.Queue[Entry]:
        with self._lock:
            if self._thread is None or self._queue is None:
                self._queue = queue.Queue(maxsize=settings.WEBHOOK_RECORD_QUEUE)
                self._stopping = threading.Event()  # this thread's own
                self._thread = threading.Thread(
                    target=self._run,
                    args=(self._queue, self._stopping),
                    name="admission-records",
                    daemon=True,
                )
                self._thread.start()
            return self._queue

    def _after_fork(self) -> None:
        """A forked child inherits the parent's state, not its thread: start afresh (the
        parent's queued records are the parent's to write)."""
        self._init_state()

    def _run(self, pending: queue.Queue[Entry], stopping: threading.Event) -> None:
        try:
            while not stopping.is_set():
                try:
                    batch = [pending.get(timeout=0.5)]  # wakes up to notice stop()
                except queue.Empty:
                    continue
                # The rest of a burst joins the batch: one statement for it, and the thread
                # wakes (and takes the interpreter from the reviews) once per burst, not once
                # per denial.
                lingering = time.monotonic() + LINGER
                while len(batch) < BATCH:
                    try:
                        batch.append(pending.get(timeout=max(0.0, lingering - time.monotonic())))
                    except queue.Empty:
                        break
                self._write(batch)
                with self._idle:
                    self._unwritten -= len(batch)
                    self._idle.notify_all()
        finally:
            _close_connection()  # this thread's own

    def _write(self, batch: list[Entry]) -> None:
        for attempt in (1, 2):
            started = time.perf_counter()
            try:
                write(batch)
            except Exception as exc:  # noqa: BLE001 - any failure: log, reconnect, go on
                # A broken connection (a restart, a killed session) is replaced by the next
                # attempt's; a statement error leaves nothing open (autocommit).
                _close_connection()
                if attempt == 1:
                    log.warning(
                        "admission records not written (%s: %s); writing them again on a new "
                        "connection",
                        type(exc).__name__,
                        " ".join(str(exc).split())[:200],
                    )
                    continue
                log.error(
                    "admission records not written again (%s: %s); %d dropped",
                    type(exc).__name__,
                    " ".join(str(exc).split())[:200],
                    len(batch),
                )
                self._drop(WRITE_FAILED, len(batch))
                return
            self.write_seconds += time.perf_counter() - started
            self.written += len(batch)
            self.batches += 1
            if connection.vendor == "postgresql" and connection.connection is not None:
                self.backend_pid = connection.connection.info.backend_pid
            return

    def _drop(self, reason: str, records: int) -> None:
        now = time.monotonic()
        with self._lock:
            self._dropped[reason] += records
            self._unwarned += records
            if now - self._warned_at < DROP_WARN_EVERY:
                return
            dropped, self._unwarned, self._warned_at = self._unwarned, 0, now
        log.warning(
            "admission records dropped: %d since the last warning (latest: %s); the denials "
            "were answered, their records lost (nicportal_admission_records_dropped_total)",
            dropped,
            reason,
        )


def _close_connection() -> None:
    try:
        connection.close()
    except Exception:  # closing a broken connection may fail: it is gone anyway
        log.debug("admission record connection not closed cleanly", exc_info=True)


WRITER = RecordWriter()
os.register_at_fork(after_in_child=WRITER._after_fork)


@atexit.register
def flush_before_exit() -> None:
    """A process (or gunicorn worker) that stops writes what it queued first, within a short
    deadline."""
    if WRITER.running and not WRITER.flush(EXIT_FLUSH_SECONDS):
        log.warning("admission records still queued at exit were not written")
