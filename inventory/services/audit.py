"""Writing the append-only history of user actions. Every reservation and NAD action goes
through `record()`, so the rows look the same whichever door (UI, API, task) the action came
from. The history the sync writes (ownership changes, an agent that stops answering) is written
by `sync/` itself (verdicts, snapshot, contact), in bulk, in the transaction of the change.

Call it inside the transaction of the change it describes: the history row commits or rolls back
with the change, never without it.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group

from inventory.models import HistoryEntry, Interface, Node


def record(
    kind: str,
    *,
    message: str,
    actor: Any = None,
    team: Group | None = None,
    interface: Interface | None = None,
    node: Node | None = None,
    data: dict[str, Any] | None = None,
    old_state: str = "",
    new_state: str = "",
) -> HistoryEntry:
    """Append one history row. `node` defaults to the interface's node so that a node's history
    page shows its interfaces' events too. `actor` is a user, or None for the system (expiry,
    sync); an anonymous user is stored as None."""
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if node is None and interface is not None:
        node_id = interface.node_id
    else:
        node_id = node.pk if node is not None else None
    return HistoryEntry.objects.create(
        kind=kind,
        message=message,
        actor=actor,
        team=team,
        interface=interface,
        node_id=node_id,
        data=data or {},
        old_state=old_state,
        new_state=new_state,
    )
