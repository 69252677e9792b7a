"""Polling workflows: one node, the cluster, a whole sweep. Shared by the Celery tasks, the
`poll` management command and the benchmarks, so that all three run the same code.

Locks live in the cache (Redis in production): `cache.add` is atomic there, so two sweeps never
overlap and two polls of one node never interleave. A lock has a timeout a little longer than the
task's hard time limit, so a killed worker cannot hold it forever. When the cache does not answer,
the lock is a PostgreSQL advisory lock instead (see `cache_lock`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from django.utils import timezone

from inventory.clients.agents import AgentClient
from inventory.clients.cluster import ClusterClient, ClusterError
from inventory.models import Cluster, Node, contact_cache_key
from inventory.sync.contact import note_agent_failure, note_not_modified
from inventory.sync.lint import lint_cluster_nads
from inventory.sync.listing import apply_listing, get_cluster
from inventory.sync.snapshot import apply_snapshot
from inventory.sync.stats import SyncStats
from inventory.sync.verdicts import refresh_node_ownership

log = logging.getLogger(__name__)

SWEEP_STATUS_KEY = "sweep-status"


@contextlib.contextmanager
def cache_lock(name: str, *, timeout: float) -> Iterator[bool]:
    """Yields True when this caller holds the lock, False when someone else does.

    `cache.add` answers None when Redis did not answer (django-redis IGNORE_EXCEPTIONS, see
    settings): the lock falls back to the database, so that sweeps and node polls go on, still
    one at a time, while the cache is down. For the moment Redis comes back, a holder of the
    database lock and a holder of the cache lock may overlap once; both are safe to overlap
    (writes are serialised by the node row lock in sync.snapshot.apply_snapshot), only wasteful."""
    key = f"lock:{name}"
    acquired = cache.add(key, "1", timeout=int(timeout) + 1)
    if acquired is None:
        log.warning("lock=%s cache unavailable: using a database lock", name)
        with database_lock(key) as held:
            yield held
        return
    try:
        yield acquired
    finally:
        if acquired:
            cache.delete(key)


@contextlib.contextmanager
def database_lock(key: str) -> Iterator[bool]:
    """A PostgreSQL session advisory lock on this thread's connection (pg_try_advisory_lock:
    never waits), released at the end, or by the server when the connection ends, so a killed
    worker holds nothing. (Behind a transaction-pooling PgBouncer, session locks do not hold:
    keep the cache up there.) Other databases have no such lock; SQLite, the embedded one,
    serialises its writers anyway: the lock is held."""
    if connection.vendor != "postgresql":
        yield True
        return
    digest = hashlib.blake2b(key.encode(), digest_size=8).digest()
    lock_id = int.from_bytes(digest, "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s)", [lock_id])
        held = bool(cursor.fetchone()[0])
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [lock_id])


def _lock_timeout() -> float:
    return float(settings.CELERY_TASK_TIME_LIMIT) + 5


def poll_cluster(
    cluster: Cluster | None = None, *, client: ClusterClient | None = None, recompute: bool = True
) -> SyncStats:
    """List nodes, agent pods, pods, NADs and sandbox failures; apply them. With
    recompute=False the caller polls the touched nodes' agents next (stats.touched_nodes)."""
    cluster = cluster or get_cluster()
    client = client or ClusterClient.from_settings()
    listing = client.listing()
    stats = apply_listing(cluster, listing, recompute=recompute)
    api_url = client.api_url()[:500]
    if cluster.api_url != api_url:
        cluster.api_url = api_url
        cluster.save(update_fields=["api_url"])
    return stats


def poll_node(
    node: Node | int,
    *,
    agent: AgentClient | None = None,
    recompute: bool = False,
    lock: bool = True,
    contacts: dict | None = None,
) -> SyncStats:
    """Fetch one node's snapshot (conditional on its ETag) and apply it. recompute=True also
    re-judges the node when the snapshot did not change (its pod claims did).

    lock=False skips the per-node cache lock: a sweep holding the sweep lock passes it (two
    round trips to Redis per node saved); a concurrent hint-triggered poll of the same node is
    still serialised by the node row lock in apply_snapshot and finds nothing to write."""
    if not isinstance(node, Node):
        node = Node.objects.filter(pk=node).first()
        if node is None:
            return SyncStats()
    if lock:
        with cache_lock(f"node:{node.pk}", timeout=_lock_timeout()) as held:
            if not held:
                stats = SyncStats()
                stats.messages.append(f"{node.name}: poll already running")
                return stats
            stats = _poll_node(node, agent=agent, contacts=contacts)
            if contacts is None and not stats.agent_failures:
                _keep_contacts_without_cache({contact_cache_key(node.pk): node.pk})
    else:
        stats = _poll_node(node, agent=agent, contacts=contacts)
    if recompute and not (stats.created or stats.updated or stats.vanished):
        stats.add(refresh_node_ownership(node))
    return stats


def _keep_contacts_without_cache(node_ids: dict[str, int]) -> None:
    """The agents' contact times just written to the cache ({cache key: node id}): when the
    cache did not keep them (Redis down), they go to the Node rows, which every reader falls
    back to, so that a node is not judged stale, nor shown as silent, from an old row. One read
    of the cache per call: with Redis up, nothing else happens."""
    sample = next(iter(node_ids), None)
    if sample is None or cache.get(sample) is not None:
        return
    now = timezone.now()
    Node.objects.filter(pk__in=node_ids.values()).update(last_contact_at=now)


def _poll_node(node: Node, *, agent: AgentClient | None, contacts: dict | None = None) -> SyncStats:
    url = node.effective_agent_url
    if not url:
        return note_agent_failure(node, "no agent pod found on this node")
    agent = agent or AgentClient.from_settings()
    result = agent.fetch(url, node=node.name, etag=node.agent_etag)
    if result.status == "not_modified":
        return note_not_modified(node, contacts=contacts)
    if result.status == "ok" and result.snapshot is not None:
        return apply_snapshot(node, result.snapshot, etag=result.etag)
    log.warning("node=%s agent=%s poll failed: %s", node.name, url, result.error)
    return note_agent_failure(node, f"{result.error or 'agent answer unusable'} ({url})")


@dataclass
class SweepReport:
    nodes: int = 0
    agents_ok: int = 0
    agents_failed: int = 0
    duration: float = 0.0
    stats: SyncStats = field(default_factory=SyncStats)
    cluster_error: str = ""


def record_sweep(cluster: Cluster, report: SweepReport) -> None:
    """Sweep bookkeeping goes to the cache (read by /readyz and /metrics) so that a warm sweep
    writes no rows; the Cluster row is updated at most every few minutes, on an error, or on
    every sweep while the cache does not keep the status (the readers fall back to the row)."""
    now = timezone.now()
    status = {
        "at": now.isoformat(),
        "ok": not report.cluster_error,
        "duration": report.duration,
        "nodes": report.nodes,
        "agents_ok": report.agents_ok,
        "agents_failed": report.agents_failed,
        "rows_written": report.stats.rows_written,
        "error": report.cluster_error,
    }
    key = f"{SWEEP_STATUS_KEY}:{cluster.pk}"
    cache.set(key, status, timeout=None)
    cached = cache.get(key) == status
    if report.cluster_error:
        if cluster.last_error != report.cluster_error:
            cluster.last_error = report.cluster_error[:2000]
            cluster.last_sweep_at = now
            cluster.save(update_fields=["last_error", "last_sweep_at"])
        return
    stale = (
        cluster.last_sweep_ok_at is None or (now - cluster.last_sweep_ok_at).total_seconds() > 300
    )
    if stale or cluster.last_error or not cached:
        cluster.last_sweep_at = cluster.last_sweep_ok_at = now
        cluster.last_sweep_duration = report.duration
        cluster.last_error = ""
        cluster.save(
            update_fields=["last_sweep_at", "last_sweep_ok_at", "last_sweep_duration", "last_error"]
        )


def sweep_status(cluster: Cluster) -> dict | None:
    return cache.get(f"{SWEEP_STATUS_KEY}:{cluster.pk}")


def dispatch_sweep(*, enqueue: Callable[[int, bool], object]) -> SweepReport:
    """The Celery form of a sweep (tasks.sweep): poll the cluster, hand every node to
    `enqueue(node_id, recompute)` (a poll_node task), lint the NADs, and record the outcome
    where /readyz and /metrics read it, as `sweep_inline` does.

    The node polls run after this returns, so the agent counts are the nodes' last known state
    (agent_error empty or not), from the previous polls."""
    started = time.monotonic()
    report = SweepReport()
    cluster = get_cluster()
    touched: set[int] = set()
    try:
        listed = poll_cluster(cluster, recompute=False)
        touched = listed.touched_nodes
        report.stats.add(listed)
    except ClusterError as exc:
        # Keep polling the agents we know: their facts stay fresh while the API is down.
        report.cluster_error = str(exc)
        log.error("cluster poll failed: %s", exc)
    nodes = Node.objects.filter(cluster=cluster, in_cluster=True)
    node_ids = list(nodes.values_list("pk", flat=True))
    for node_id in node_ids:
        enqueue(node_id, node_id in touched)
    report.nodes = len(node_ids)
    report.agents_failed = nodes.exclude(agent_error="").count()
    report.agents_ok = report.nodes - report.agents_failed
    # Lint against the inventory as it stands (the node polls just queued refresh it; their
    # effect shows in the next sweep's lint).
    report.stats.other_rows += lint_cluster_nads(cluster)
    report.duration = time.monotonic() - started
    record_sweep(cluster, report)
    return report


def sweep_inline(
    *,
    workers: int = 8,
    progress: Callable[[int, int, str], None] | None = None,
    cluster_client: ClusterClient | None = None,
    agent: AgentClient | None = None,
    profile_inline: bool = False,
) -> SweepReport:
    """One full sweep in this process: the cluster, then every node with a thread pool.
    Used by `manage.py poll` and the benchmarks; Celery fans the same per-node work out."""
    started = time.monotonic()
    report = SweepReport()
    cluster = get_cluster()
    touched: set[int] = set()
    try:
        listed = poll_cluster(cluster, client=cluster_client, recompute=False)
        touched = listed.touched_nodes
        report.stats.add(listed)
    except ClusterError as exc:
        report.cluster_error = str(exc)
        log.error("cluster poll failed: %s", exc)
    nodes = list(Node.objects.filter(cluster=cluster, in_cluster=True))
    report.nodes = len(nodes)
    agent = agent or AgentClient.from_settings()
    if connection.vendor == "sqlite":
        # One writer at a time is all SQLite allows (and its shared-cache test database fails
        # instead of waiting): poll nodes one after another there.
        workers = 1
    work: queue.SimpleQueue[Node] = queue.SimpleQueue()
    for node in nodes:
        work.put(node)
    done_lock = threading.Lock()
    done = 0
    # Contact times of unchanged agents, written to the cache in one round trip at the end.
    contacts: dict = {}

    def worker(own_connection: bool = True) -> None:
        # Each thread polls nodes until the queue is empty, on one database connection that it
        # closes at the end (connections are per thread; left open they outlive the sweep).
        nonlocal done
        try:
            while True:
                try:
                    node = work.get_nowait()
                except queue.Empty:
                    return
                try:
                    stats = poll_node(
                        node,
                        agent=agent,
                        recompute=node.pk in touched,
                        lock=False,
                        contacts=contacts,
                    )
                except Exception as exc:
                    log.exception("node=%s poll crashed", node.name)
                    stats = SyncStats(agent_failures=1, messages=[f"{node.name}: {exc}"])
                with done_lock:
                    done += 1
                    report.stats.add(stats)
                    if stats.agent_failures:
                        report.agents_failed += 1
                    else:
                        report.agents_ok += 1
                    if progress:
                        progress(done, len(nodes), node.name)
        finally:
            if own_connection:
                connections.close_all()

    if workers == 1 and profile_inline:
        worker(own_connection=False)  # in this thread: what a profiler of the caller sees
    else:
        with ThreadPoolExecutor(max_workers=max(1, min(workers, len(nodes) or 1))) as pool:
            for future in [pool.submit(worker) for _ in range(max(1, min(workers, len(nodes))))]:
                future.result()
    if contacts:
        cache.set_many(contacts, timeout=None)
        ids = {contact_cache_key(node.pk): node.pk for node in nodes}
        _keep_contacts_without_cache({key: ids[key] for key in contacts if key in ids})
    report.stats.other_rows += lint_cluster_nads(cluster)
    report.duration = time.monotonic() - started
    record_sweep(cluster, report)
    return report
