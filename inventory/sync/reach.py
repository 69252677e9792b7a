"""Whether a cluster's API answers, and what follows for its NICs.

A sweep of a cluster whose API read fails keeps polling that cluster's agents (their facts stay
fresh), but without the API nobody knows which pods hold NICs. Once reads have failed for longer
than NICPORTAL_CLUSTER_STALE_AFTER (since the last read that worked), the cluster is marked
unreachable (`Cluster.unreachable_since`) and every NIC of *its* nodes is judged `unknown`, with
the reason (rules/ownership.py: `_agent_silent`). Other clusters' rows are not touched: each
cluster has its own sweep and its own Cluster row. The first read that works again clears the
mark and judges the cluster's NICs again.

The time of the last read that worked lives in the cache (one write per sweep, no row), with
the Cluster row's `last_sweep_ok_at` as the fallback while the cache has nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.core.cache import cache

from inventory.models import Cluster, Node
from inventory.sync.stats import SyncStats
from inventory.sync.verdicts import refresh_node_ownership

log = logging.getLogger(__name__)


def _ok_key(cluster: Cluster) -> str:
    return f"cluster-read-ok:{cluster.pk}"


def note_cluster_read(cluster: Cluster, now: datetime) -> SyncStats:
    """The cluster's API answered: remember when; clear the unreachable mark if it was set."""
    cache.set(_ok_key(cluster), now, timeout=None)
    if cluster.unreachable_since is None:
        return SyncStats()
    log.warning("cluster=%s API answers again; judging its NICs again", cluster.name)
    cluster.unreachable_since = None
    cluster.save(update_fields=["unreachable_since"])
    return _rejudge_cluster(cluster, now)


def note_cluster_failure(cluster: Cluster, error: str, now: datetime) -> SyncStats:
    """Reading the cluster's API failed. Marks the cluster unreachable (and its NICs `unknown`)
    once the last read that worked is older than NICPORTAL_CLUSTER_STALE_AFTER."""
    if cluster.unreachable_since is not None:
        return SyncStats()
    last_ok = cache.get(_ok_key(cluster)) or cluster.last_sweep_ok_at
    if last_ok is not None and (now - last_ok).total_seconds() <= settings.CLUSTER_STALE_AFTER:
        return SyncStats()
    log.warning(
        "cluster=%s API unreachable since %s: %s; its NICs are now unknown",
        cluster.name,
        last_ok,
        error,
    )
    cluster.unreachable_since = now
    cluster.save(update_fields=["unreachable_since"])
    return _rejudge_cluster(cluster, now)


def _rejudge_cluster(cluster: Cluster, now: datetime) -> SyncStats:
    """Judge every NIC of this cluster's nodes again (each node in its own transaction)."""
    stats = SyncStats()
    for node in Node.objects.filter(cluster=cluster).order_by("pk").iterator(chunk_size=500):
        node.cluster = cluster  # the row just changed: judge with it, not a stale copy
        stats.add(refresh_node_ownership(node, now=now))
    return stats
