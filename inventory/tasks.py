"""Celery tasks: thin adapters over services (ids in, idempotent, time-limited).

The beat schedule (settings.CELERY_BEAT_SCHEDULE) runs `sweep` every POLL_INTERVAL seconds; the
sweep polls the cluster and fans out one `poll_node` per node. Agent faults are data, not task
failures (the node is marked and the next sweep tries again); only database hiccups are retried.
"""

from __future__ import annotations

import logging

from celery import shared_task
from django.core.cache import cache
from django.db import InterfaceError, OperationalError

from inventory.clients.cluster import ClusterError
from inventory.models import Node
from inventory.services import polling, reservations
from inventory.sync.lint import lint_cluster_nads
from inventory.sync.listing import get_cluster

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


@shared_task(soft_time_limit=60, time_limit=90, **_RETRY)
def poll_cluster() -> dict:
    stats = polling.poll_cluster()
    return {"rows": stats.rows_written}


@shared_task(soft_time_limit=120, time_limit=150, **_RETRY)
def sweep() -> dict:
    """Dispatcher: poll the cluster, then one task per node. Never two sweeps at once."""
    with polling.cache_lock("sweep", timeout=150) as held:
        if not held:
            log.info("sweep skipped: another sweep is running")
            return {"skipped": True}
        cluster = get_cluster()
        touched: set[int] = set()
        try:
            touched = polling.poll_cluster(cluster, recompute=False).touched_nodes
        except ClusterError as exc:
            # Keep polling the agents we know: their facts stay fresh while the API is down.
            log.error("cluster poll failed: %s", exc)
            polling.record_sweep(cluster, polling.SweepReport(cluster_error=str(exc)))
        node_ids = list(
            Node.objects.filter(cluster=cluster, in_cluster=True).values_list("pk", flat=True)
        )
        for node_id in node_ids:
            poll_node.apply_async(
                (node_id, node_id in touched), expires=polling.settings.POLL_INTERVAL
            )
        # Lint the cluster's NADs against the inventory as it stands (the node polls just
        # queued refresh it; their effect shows in the next sweep's lint).
        linted = lint_cluster_nads(cluster)
        return {"nodes": len(node_ids), "nads_relinted": linted}


@shared_task(soft_time_limit=30, time_limit=45, **_RETRY)
def refresh_node(node_id: int) -> dict:
    """A hint said this node changed: re-read its pods (their network-status names the pod that
    now holds a NIC) and its agent, so that the verdict is right in one step."""
    try:
        polling.poll_cluster(recompute=False)
    except ClusterError as exc:
        log.warning("hint: cluster poll failed: %s", exc)
    # Other nodes touched by that listing are re-judged by their next poll.
    stats = polling.poll_node(node_id, recompute=True)
    return {"rows": stats.rows_written}


def request_refresh(*, node_id: int, reason: str = "hint") -> bool:
    """Queue a refresh of one node for a hint. Debounced per node: the first hint of a burst
    refreshes at once; the others within a second share one trailing refresh a second later, so
    the last change of a burst is never left for the next sweep. Returns False when the hint was
    folded into a refresh already queued."""
    if cache.add(f"hint:{node_id}", reason, timeout=1):
        refresh_node.apply_async((node_id,), expires=30)
        return True
    if cache.add(f"hint-trailing:{node_id}", reason, timeout=2):
        refresh_node.apply_async((node_id,), countdown=1, expires=30)
        return True
    return False


@shared_task(soft_time_limit=60, time_limit=90, **_RETRY)
def expire_reservations() -> dict:
    return {"expired": reservations.expire_due()}


@shared_task(soft_time_limit=60, time_limit=90, **_RETRY)
def publish_node_reservations(node_id: int) -> None:
    reservations.publish_node_reservations(node_id=node_id)
