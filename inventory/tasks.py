"""Celery tasks: thin adapters over services (ids in, idempotent, time-limited).

The beat schedule (settings.CELERY_BEAT_SCHEDULE) runs `sweep` every POLL_INTERVAL seconds; the
sweep queues one `sweep_cluster` per cluster of the registry (polling.sweep_targets), which polls
that cluster and fans out one `poll_node_batch` per BATCH_NODES of its nodes (a hint polls one
node with `refresh_node`). Each cluster's sweep has its own lock, client and error handling: a
cluster whose API is down fails its own sweep only. Agent faults are data, not task
failures (the node is marked and the next sweep tries again); only database hiccups are retried.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError

from inventory.clients.cluster import ClusterError
from inventory.models import Cluster
from inventory.services import polling, reservations

log = logging.getLogger(__name__)

_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 5,
}


@shared_task(soft_time_limit=30, time_limit=45, **_RETRY)
def poll_node(node_id: int, recompute: bool = False) -> dict:
    stats = polling.poll_node(node_id, recompute=recompute)
    return {"rows": stats.rows_written, "failed": bool(stats.agent_failures)}


@shared_task(soft_time_limit=90, time_limit=120, **_RETRY)
def poll_node_batch(node_ids: list[int], touched: list[int]) -> dict:
    """A sweep's share of nodes: polled with a few threads (the agents' round trips overlap),
    nodes seen for the first time stored in bulk. The worker's processes (Celery's prefork
    pool, one per core by default) take the batches in parallel."""
    report = polling.poll_batch(node_ids, touched=set(touched))
    return {"rows": report.stats.rows_written, "failed": report.agents_failed}


@shared_task(soft_time_limit=60, time_limit=90, **_RETRY)
def poll_cluster() -> dict:
    stats = polling.poll_cluster()
    return {"rows": stats.rows_written}


@shared_task(soft_time_limit=30, time_limit=45, **_RETRY)
def sweep() -> dict:
    """Dispatcher: one sweep_cluster task per cluster the registry names, taken by the same
    workers in parallel."""
    clusters = polling.sweep_targets()
    for cluster in clusters:
        sweep_cluster.apply_async((cluster.pk,), expires=settings.POLL_INTERVAL)
    return {"clusters": [cluster.name for cluster in clusters]}


@shared_task(soft_time_limit=120, time_limit=150, **_RETRY)
def sweep_cluster(cluster_id: int) -> dict:
    """One cluster's sweep: poll its API, then one task per batch of its nodes. Never two sweeps
    of one cluster at once. Records its outcome (polling.record_sweep) like `manage.py poll`."""
    cluster = Cluster.objects.filter(pk=cluster_id, enabled=True).first()
    if cluster is None:
        return {"skipped": True}
    with polling.cache_lock(f"sweep:{cluster.pk}", timeout=150) as held:
        if not held:
            log.info("cluster=%s sweep skipped: another sweep is running", cluster.name)
            return {"skipped": True}
        report = polling.dispatch_sweep(
            cluster=cluster,
            enqueue=lambda node_ids, touched: poll_node_batch.apply_async(
                (node_ids, touched), expires=settings.POLL_INTERVAL
            ),
        )
        return {
            "cluster": cluster.name,
            "nodes": report.nodes,
            "ok": not report.cluster_error,
            "rows": report.stats.rows_written,
        }


@shared_task(soft_time_limit=30, time_limit=45, **_RETRY)
def refresh_node(node_id: int) -> dict:
    """A hint said this node changed: re-read its pods (their network-status names the pod that
    now holds a NIC) and its agent, so that the verdict is right in one step."""
    cluster = Cluster.objects.filter(nodes__pk=node_id).first()  # the node's own cluster
    if cluster is None:
        return {"rows": 0}
    try:
        polling.poll_cluster(cluster, recompute=False)
    except ClusterError as exc:
        log.warning("hint: cluster=%s poll failed: %s", cluster.name, exc)
    # Other nodes touched by that listing are re-judged by their next poll.
    stats = polling.poll_node(node_id, recompute=True)
    return {"rows": stats.rows_written}


def request_refresh(*, node_id: int, reason: str = "hint") -> bool:
    """Queue a refresh of one node for a hint. Debounced per node: the first hint of a burst
    refreshes at once; the others within a second share one trailing refresh a second later, so
    the last change of a burst is never left for the next sweep. Returns False when the hint was
    folded into a refresh already queued.

    Without the cache (Redis down: `cache.add` answers None) there is nothing to debounce with,
    so every hint queues its refresh (each is idempotent). Without the broker the error
    (kombu's OperationalError) reaches the caller, and the debounce key is dropped so that the
    hint's retry is not folded into a refresh that was never queued."""
    for key, timeout, countdown in ((f"hint:{node_id}", 1, 0), (f"hint-trailing:{node_id}", 2, 1)):
        added = cache.add(key, reason, timeout=timeout)
        if added is False:
            continue
        try:
            refresh_node.apply_async((node_id,), countdown=countdown, expires=30)
        except Exception:
            if added:
                cache.delete(key)
            raise
        return True
    return False


@shared_task(soft_time_limit=60, time_limit=90, **_RETRY)
def expire_reservations() -> dict:
    return {"expired": reservations.expire_due()}


@shared_task(soft_time_limit=60, time_limit=90, **_RETRY)
def publish_node_reservations(node_id: int) -> None:
    reservations.publish_node_reservations(node_id=node_id)
