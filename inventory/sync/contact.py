"""The Node's agent health: contact time, `stale` and the last error. A warm sweep writes only the
cache; the row changes when the node's health does, and then its verdicts are judged again
(a stale node's interfaces are `unknown`)."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from inventory.choices import HistoryKind
from inventory.models import HistoryEntry, Node, contact_cache_key
from inventory.sync.stats import SyncStats
from inventory.sync.verdicts import rejudge

log = logging.getLogger(__name__)


def note_contact(node: Node, now: datetime, contacts: dict | None = None) -> list[str]:
    """Record an answer from the node's agent. Only the cache is written, unless the node's
    health changes (first contact, back from stale, error cleared): a warm sweep writes nothing.
    With `contacts` the cache write is left to the caller, who writes a sweep's worth at once."""
    if contacts is None:
        cache.set(contact_cache_key(node.pk), now, timeout=None)
    else:
        contacts[contact_cache_key(node.pk)] = now
    fields = []
    if node.last_contact_at is None or node.stale or node.agent_error:
        node.last_contact_at = now
        fields.append("last_contact_at")
    if node.stale:
        node.stale = False
        fields.append("stale")
    if node.agent_error:
        node.agent_error = ""
        fields.append("agent_error")
    return fields


def note_not_modified(
    node: Node, *, now: datetime | None = None, contacts: dict | None = None
) -> SyncStats:
    """The agent answered 304: the node is alive and unchanged. Writes nothing unless the node
    was stale (its verdicts come back from `unknown`)."""
    now = now or timezone.now()
    stats = SyncStats()
    fields = note_contact(node, now, contacts)
    if fields:
        with transaction.atomic():
            node.save(update_fields=fields)
            stats.node_rows += 1
            if "stale" in fields:
                rejudge(node, now, stats)
    return stats


def note_agent_failure(node: Node, error: str, *, now: datetime | None = None) -> SyncStats:
    """The agent did not answer (or answered garbage). Facts are kept; once the last contact is
    older than AGENT_STALE_AFTER the node turns stale and its interfaces `unknown`."""
    now = now or timezone.now()
    stats = SyncStats(agent_failures=1)
    error = error[:2000]
    contact = node.last_contact
    becomes_stale = contact is None or (
        (now - contact).total_seconds() > settings.AGENT_STALE_AFTER
    )
    fields = []
    if node.agent_error != error:
        node.agent_error = error
        fields.append("agent_error")
    if becomes_stale and not node.stale:
        node.stale = True
        fields.append("stale")
    if not fields:
        return stats
    with transaction.atomic():
        node.save(update_fields=fields)
        stats.node_rows += 1
        if "stale" in fields:
            log.warning(
                "node=%s agent unreachable since %s: %s; interfaces now unknown",
                node.name,
                contact,
                error,
            )
            HistoryEntry.objects.create(
                at=now,
                kind=HistoryKind.AGENT,
                node=node,
                message=f"agent on {node.name} stopped answering: {error}",
            )
            stats.history += 1
            rejudge(node, now, stats)
    return stats
