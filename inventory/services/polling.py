"""Polling workflows: one node, the cluster, a whole sweep. Shared by the Celery tasks, the
`poll` management command and the benchmarks, so that all three run the same code.

Locks live in the cache (Redis in production): `cache.add` is atomic there, so two sweeps never
overlap and two polls of one node never interleave. A lock has a timeout a little longer than the
task's hard time limit, so a killed worker cannot hold it forever.
"""

from __future__ import annotations

import contextlib
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
from inventory.models import Cluster, Node
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
    """Yields True when this caller holds the lock, False when someone else does."""
    key = f"lock:{name}"
    acquired = cache.add(key, "1", timeout=int(timeout) + 1)
    try:
        yield acquired
    finally:
        if acquired:
            cache.delete(key)


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
    else:
        stats = _poll_node(node, agent=agent, contacts=contacts)
    if recompute and not (stats.created or stats.updated or stats.vanished):
        stats.add(refresh_node_ownership(node))
    return stats


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
    writes no rows; the Cluster row is updated at most every few minutes, or on an error."""
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
    cache.set(f"{SWEEP_STATUS_KEY}:{cluster.pk}", status, timeout=None)
    if report.cluster_error:
        if cluster.last_error != report.cluster_error:
            cluster.last_error = report.cluster_error[:2000]
            cluster.last_sweep_at = now
            cluster.save(update_fields=["last_error", "last_sweep_at"])
        return
    stale = (
        cluster.last_sweep_ok_at is None or (now - cluster.last_sweep_ok_at).total_seconds() > 300
    )
    if stale or cluster.last_error:
        cluster.last_sweep_at = cluster.last_sweep_ok_at = now
        cluster.last_sweep_duration = report.duration
        cluster.last_error = ""
        cluster.save(
            update_fields=["last_sweep_at", "last_sweep_ok_at", "last_sweep_duration", "last_error"]
        )


def sweep_status(cluster: Cluster) -> dict | None:
    return cache.get(f"{SWEEP_STATUS_KEY}:{cluster.pk}")


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
    report.stats.other_rows += lint_cluster_nads(cluster)
    report.duration = time.monotonic() - started
    record_sweep(cluster, report)
    return report
