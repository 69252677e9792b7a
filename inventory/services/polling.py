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
import multiprocessing
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.core.cache import cache
from django.db import connection, connections
from django.db.models import QuerySet
from django.utils import timezone
from django_redis.client import DefaultClient
from redis.exceptions import RedisError

from inventory.clients.agents import AgentClient
from inventory.clients.cluster import ClusterClient, ClusterError
from inventory.clients.watch import read_by_listing
from inventory.models import Cluster, Node, contact_cache_key
from inventory.services.cluster_clients import cluster_client, cluster_watch, sweep_targets
from inventory.services.cluster_clients import forget_cluster_reads as forget_cluster_reads
from inventory.services.cluster_clients import settings_client as settings_client
from inventory.sync.contact import note_agent_failure, note_not_modified
from inventory.sync.first_sight import (
    BATCH_NODES,
    FirstSnapshot,
    apply_first_snapshots,
    bulk_supported,
    with_known_flag,
)
from inventory.sync.lint import lint_cluster_nads
from inventory.sync.listing import apply_listing, get_cluster, listing_fingerprint
from inventory.sync.reach import note_cluster_failure, note_cluster_read
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


# Per watch reader: cluster id -> the fingerprint of that cluster's rows right after the
# reader's listing was applied to them (poll_cluster). Gone with the reader.
_applied: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def poll_cluster(
    cluster: Cluster | None = None, *, client: ClusterClient | None = None, recompute: bool = True
) -> SyncStats:
    """List nodes, agent pods, pods, NADs and sandbox failures of one cluster (the default
    one when None); apply them. With recompute=False the caller polls the touched nodes'
    agents next (stats.touched_nodes)."""
    cluster = cluster or get_cluster()
    client = client or cluster_client(cluster)
    if settings.KUBE_WATCH:
        reader = cluster_watch(client)
        listing = reader.listing()
        read = reader.last_read
        # Nothing received since this reader's listing was applied, and the rows are as that
        # apply left them: applying it again would write nothing (and read every node row).
        applied = _applied.setdefault(reader, {})
        if not reader.changed and applied.get(cluster.pk) == listing_fingerprint(cluster):
            stats = SyncStats()
        else:
            applied.pop(cluster.pk, None)
            stats = apply_listing(cluster, listing, recompute=recompute)
            applied[cluster.pk] = listing_fingerprint(cluster)
    else:
        listing, read = read_by_listing(client)
        stats = apply_listing(cluster, listing, recompute=recompute)
    stats.cluster_read = read.as_dict()
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
        node = Node.objects.filter(pk=node).select_related("cluster").first()
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


def _poll_node(
    node: Node,
    *,
    agent: AgentClient | None,
    contacts: dict | None = None,
    first_sight: list[FirstSnapshot] | None = None,
) -> SyncStats:
    """Fetch and apply one node's snapshot. With `first_sight`, the first snapshot of a node
    the inventory has no interface of (Node.known False, see with_known_flag) is collected there
    for apply_first_snapshots instead of being applied now."""
    url = node.effective_agent_url
    if not url:
        return note_agent_failure(node, "no agent pod found on this node")
    agent = agent or AgentClient.for_cluster(node.cluster)
    result = agent.fetch(url, node=node.name, etag=node.agent_etag)
    if result.status == "not_modified":
        return note_not_modified(node, contacts=contacts)
    if result.status == "ok" and result.snapshot is not None:
        if first_sight is not None and getattr(node, "known", True) is False:
            first_sight.append(FirstSnapshot(node, result.snapshot, result.etag))
            return SyncStats()
        return apply_snapshot(node, result.snapshot, etag=result.etag)
    log.warning("node=%s agent=%s poll failed: %s", node.name, url, result.error)
    return note_agent_failure(node, f"{result.error or 'agent answer unusable'} ({url})")


def store_first_sight(batch: list[FirstSnapshot], *, contacts: dict | None = None) -> SyncStats:
    """Store collected first snapshots in bulk; a node that got interfaces meanwhile goes
    through apply_snapshot instead."""
    stats, later = apply_first_snapshots(batch, now=timezone.now(), contacts=contacts)
    for item in later:
        stats.add(apply_snapshot(item.node, item.snapshot, etag=item.etag))
    batch.clear()
    return stats


@dataclass
class NodesReport:
    """What polling a set of nodes did (a sweep's share, a Celery batch)."""

    agents_ok: int = 0
    agents_failed: int = 0
    stats: SyncStats = field(default_factory=SyncStats)

    def add(self, other: NodesReport) -> None:
        self.agents_ok += other.agents_ok
        self.agents_failed += other.agents_failed
        self.stats.add(other.stats)


def poll_nodes(
    nodes: list[Node],
    *,
    agent: AgentClient,
    touched: set[int] = frozenset(),
    workers: int = 8,
    contacts: dict | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    profile_inline: bool = False,
) -> NodesReport:
    """Poll these nodes' agents with a pool of `workers` threads; a node in `touched` is judged
    again even when its snapshot did not change (its pod claims did). Nodes seen for the first
    time (annotated by with_known_flag) are stored in bulk, BATCH_NODES per transaction, on
    PostgreSQL; one by one elsewhere. The caller holds the sweep lock (no per-node lock)."""
    report = NodesReport()
    if connection.vendor == "sqlite":
        # One writer at a time is all SQLite allows (and its shared-cache test database fails
        # instead of waiting): poll nodes one after another there.
        workers = 1
    bulk = bulk_supported()
    work: queue.SimpleQueue[Node] = queue.SimpleQueue()
    for node in nodes:
        work.put(node)
    done_lock = threading.Lock()
    done = 0

    def account(stats: SyncStats, node_name: str | None, failed: bool) -> None:
        nonlocal done
        with done_lock:
            report.stats.add(stats)
            if node_name is None:
                return
            done += 1
            if failed:
                report.agents_failed += 1
            else:
                report.agents_ok += 1
            if progress:
                progress(done, len(nodes), node_name)

    def worker(own_connection: bool = True) -> None:
        # Each thread polls nodes until the queue is empty, on one database connection that it
        # closes at the end (connections are per thread; left open they outlive the sweep).
        first_sight: list[FirstSnapshot] = []
        try:
            while True:
                try:
                    node = work.get_nowait()
                except queue.Empty:
                    break
                try:
                    # A node seen for the first time is judged with its current claims when
                    # it is stored, touched or not.
                    if not bulk or getattr(node, "known", True):
                        stats = poll_node(
                            node,
                            agent=agent,
                            recompute=node.pk in touched,
                            lock=False,
                            contacts=contacts,
                        )
                    else:
                        stats = _poll_node(
                            node, agent=agent, contacts=contacts, first_sight=first_sight
                        )
                except Exception as exc:
                    log.exception("node=%s poll crashed", node.name)
                    stats = SyncStats(agent_failures=1, messages=[f"{node.name}: {exc}"])
                account(stats, node.name, bool(stats.agent_failures))
                if len(first_sight) >= BATCH_NODES:
                    account(_store_batch(first_sight, contacts), None, False)
            account(_store_batch(first_sight, contacts), None, False)
        finally:
            if own_connection:
                connections.close_all()

    if workers == 1 and profile_inline:
        worker(own_connection=False)  # in this thread: what a profiler of the caller sees
    else:
        count = max(1, min(workers, len(nodes) or 1))
        with ThreadPoolExecutor(max_workers=count) as pool:
            for future in [pool.submit(worker) for _ in range(count)]:
                future.result()
    return report


def _store_batch(batch: list[FirstSnapshot], contacts: dict | None) -> SyncStats:
    if not batch:
        return SyncStats()
    try:
        return store_first_sight(batch, contacts=contacts)
    except Exception as exc:
        log.exception("first sight of %d nodes failed", len(batch))
        names = ", ".join(item.node.name for item in batch[:5])
        batch.clear()
        return SyncStats(messages=[f"first sight of {names}…: {exc}"])


@dataclass
class SweepReport:
    nodes: int = 0
    agents_ok: int = 0
    agents_failed: int = 0
    duration: float = 0.0
    stats: SyncStats = field(default_factory=SyncStats)
    cluster_error: str = ""
    # Seconds spent per step (cluster, agents, lint): where a slow sweep's time went.
    phases: dict[str, float] = field(default_factory=dict)
    # What reading the cluster took from the API server (clients/watch.py: ReadStats).
    cluster_read: dict[str, int] = field(default_factory=dict)


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


def _read_cluster(cluster: Cluster, report: SweepReport, client: ClusterClient | None) -> set[int]:
    """A sweep's read of one cluster's API; the nodes whose pod claims changed. A failure is
    this cluster's alone: it goes to the report, and once it has lasted, the cluster's own NICs
    turn `unknown` (sync/reach.py); its agents are still polled."""
    try:
        listed = poll_cluster(cluster, client=client, recompute=False)
    except ClusterError as exc:
        report.cluster_error = str(exc)
        log.error("cluster=%s poll failed: %s", cluster.name, exc)
        report.stats.add(note_cluster_failure(cluster, str(exc), timezone.now()))
        return set()
    report.stats.add(listed)
    report.cluster_read = listed.cluster_read
    report.stats.add(note_cluster_read(cluster, timezone.now()))
    return listed.touched_nodes


def dispatch_sweep(
    *, enqueue: Callable[[list[int], list[int]], object], cluster: Cluster | None = None
) -> SweepReport:
    """The Celery form of a sweep of one cluster (tasks.sweep_cluster; the default one when
    None): poll the cluster, hand the nodes to
    `enqueue(node_ids, touched_ids)` BATCH_NODES at a time (a poll_node_batch task: Celery's
    worker processes take the batches in parallel), lint the NADs, and record the outcome where
    /readyz and /metrics read it, as `sweep_inline` does.

    The node polls run after this returns, so the agent counts are the nodes' last known state
    (agent_error empty or not), from the previous polls."""
    started = time.monotonic()
    report = SweepReport()
    cluster = cluster or get_cluster()
    # Keep polling the agents we know when the API is down: their facts stay fresh.
    touched = _read_cluster(cluster, report, None)
    nodes = Node.objects.filter(cluster=cluster, in_cluster=True)
    node_ids = list(nodes.values_list("pk", flat=True))
    for start in range(0, len(node_ids), BATCH_NODES):
        batch = node_ids[start : start + BATCH_NODES]
        enqueue(batch, [pk for pk in batch if pk in touched])
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
    processes: int = 1,
    progress: Callable[[int, int, str], None] | None = None,
    cluster_client: ClusterClient | None = None,
    agent: AgentClient | None = None,
    profile_inline: bool = False,
    cluster: Cluster | None = None,
) -> SweepReport:
    """One full sweep from this process: the cluster, then every node with a thread pool of
    `workers`, in `processes` processes (forked, each with its share of the nodes and its own
    database connection; more than one needs PostgreSQL). Used by `manage.py poll` and the
    benchmarks; Celery fans the same per-node work out over its worker processes. One cluster
    per call: the default one when `cluster` is None (sweep_all covers every registered one)."""
    started = time.monotonic()
    report = SweepReport()
    cluster = cluster or get_cluster()
    touched = _read_cluster(cluster, report, cluster_client)
    report.phases["cluster"] = time.monotonic() - started
    in_cluster = Node.objects.filter(cluster=cluster, in_cluster=True)
    agent = agent or AgentClient.for_cluster(cluster)
    node_ids = (
        list(in_cluster.values_list("pk", flat=True))
        if processes > 1 and connection.vendor == "postgresql"
        else []
    )
    if len(node_ids) > 1:
        # The processes load their own shares of the rows: this one reads the ids only (a
        # 20,000-node fleet's rows took a core 1.2 s to build here, before any process started,
        # and again in the processes).
        report.nodes = len(node_ids)
        polled = _poll_in_processes(
            node_ids,
            cluster=cluster,
            agent=agent,
            touched=touched,
            workers=workers,
            processes=processes,
        )
    else:
        nodes = list(_sweep_nodes(in_cluster))
        for node in nodes:
            node.cluster = cluster  # judged with this row (no query per node)
        report.nodes = len(nodes)
        # Contact times of unchanged agents, written to the cache in one round trip at the end
        # (the processes write their own).
        contacts: dict = {}
        polled = poll_nodes(
            nodes,
            agent=agent,
            touched=touched,
            workers=workers,
            contacts=contacts,
            progress=progress,
            profile_inline=profile_inline,
        )
        _write_contacts(contacts, nodes)
    report.agents_ok, report.agents_failed = polled.agents_ok, polled.agents_failed
    report.stats.add(polled.stats)
    linting = time.monotonic()
    report.phases["agents"] = linting - started - report.phases["cluster"]
    report.stats.other_rows += lint_cluster_nads(cluster)
    report.duration = time.monotonic() - started
    report.phases["lint"] = report.duration - (linting - started)
    record_sweep(cluster, report)
    return report


def sweep_all(**options: object) -> dict[str, SweepReport]:
    """sweep_inline of every cluster sweep_targets() names, one after the other, by name. One
    cluster's failure is in its own report and leaves the others' sweeps alone."""
    return {
        cluster.name: sweep_inline(cluster=cluster, **options)  # type: ignore[arg-type]
        for cluster in sweep_targets()
    }


def _write_contacts(contacts: dict, nodes: list[Node]) -> None:
    """A batch of agents' contact times in one cache round trip (to the Node rows when the
    cache does not keep them)."""
    if not contacts:
        return
    _cache_forever(contacts)
    ids = {contact_cache_key(node.pk): node.pk for node in nodes}
    _keep_contacts_without_cache({key: ids[key] for key in contacts if key in ids})


def _cache_forever(values: dict) -> None:
    """cache.set_many(values, timeout=None). On Redis one MSET: django-redis's set_many sends a
    SET per key through a pipeline, 35 µs of this process's CPU per key against 12. A Redis
    error is swallowed, as the cache's IGNORE_EXCEPTIONS does (the caller checks what the cache
    kept)."""
    backend = getattr(cache, "client", None)
    if not isinstance(backend, DefaultClient):
        cache.set_many(values, timeout=None)
        return
    try:
        backend.get_client(write=True).mset(
            {backend.make_key(key): backend.encode(value) for key, value in values.items()}
        )
    except RedisError:
        log.warning("cache write of %d agent contact times failed", len(values))


def _sweep_nodes(nodes: QuerySet[Node]) -> QuerySet[Node]:
    """A sweep's node rows: with the `known` flag, without the JSON columns a poll never
    reads (decoding six JSON documents per node was most of loading 20,000 of them). An answer
    that changed anything re-reads the row under its lock (apply_snapshot,
    apply_first_snapshots), and a rare path that needs one of them (an agent turning stale
    re-judges the node) loads it on access."""
    return with_known_flag(nodes).defer(*Node.JSON_FACTS)


def poll_batch(node_ids: list[int], *, touched: set[int], workers: int = 4) -> NodesReport:
    """Poll a batch of nodes by id (a Celery task's share of a sweep). The sweep task holds the
    sweep lock while it dispatches; batches take no node locks, like a sweep's own polls: a
    hint's concurrent poll of one of them is serialised by the node row lock in apply_snapshot
    (or the batch's in apply_first_snapshots) and finds nothing left to write."""
    nodes = list(
        _sweep_nodes(
            Node.objects.filter(pk__in=node_ids, in_cluster=True).select_related("cluster")
        )
    )
    contacts: dict = {}
    report = NodesReport()
    # A sweep's batch holds one cluster's nodes; each cluster's agents answer to its own keys.
    by_cluster: dict[int, list[Node]] = {}
    for node in nodes:
        by_cluster.setdefault(node.cluster_id, []).append(node)
    for group in by_cluster.values():
        agent = AgentClient.for_cluster(group[0].cluster)
        try:
            report.add(
                poll_nodes(group, agent=agent, touched=touched, workers=workers, contacts=contacts)
            )
        finally:
            agent.close()
    _write_contacts(contacts, nodes)
    return report


# The agent client a forked process inherits (set by _poll_in_processes just before the fork).
_forked_agent: AgentClient | None = None


def _poll_in_processes(
    node_ids: list[int],
    *,
    cluster: Cluster,
    agent: AgentClient,
    touched: set[int],
    workers: int,
    processes: int,
) -> NodesReport:
    """Poll the nodes in `processes` forked processes, each a share of them with its own
    threads: one Python process cannot use more than one core for the sweep's CPU work (JSON,
    validation, the rules, building rows). Fork is safe here: the database connections are
    closed before it (each child opens its own), the agent client's pooled sockets are dropped
    in the child, and redis-py resets its pool when it finds itself in a new process."""
    global _forked_agent
    _forked_agent = agent
    connections.close_all()
    shares = [node_ids[index::processes] for index in range(processes)]
    report = NodesReport()
    context = multiprocessing.get_context("fork")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        futures = [
            pool.submit(_poll_share, share, cluster, touched & set(share), workers)
            for share in shares
        ]
        for future in futures:
            report.add(future.result())
    return report


def _poll_share(
    node_ids: list[int], cluster: Cluster, touched: set[int], workers: int
) -> NodesReport:
    """In a forked process: poll these nodes of `cluster`, write their contact times, close
    up."""
    contacts: dict = {}
    nodes = list(_sweep_nodes(Node.objects.filter(pk__in=node_ids)))
    for node in nodes:
        node.cluster = cluster  # one row for all (no Cluster built per node)
    agent = _forked_agent.forked() if _forked_agent else AgentClient.for_cluster(cluster)
    try:
        report = poll_nodes(nodes, agent=agent, touched=touched, workers=workers, contacts=contacts)
        _write_contacts(contacts, nodes)
        return report
    finally:
        agent.close()
        connections.close_all()
