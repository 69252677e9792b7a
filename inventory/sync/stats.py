"""What every writer here shares: the counts of a sync step, the column clipping and the one
bulk write."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import models

from inventory.models import Interface

BATCH_SIZE = 500
# Fields that may be longer in a hostile snapshot than the columns allow.
_MAX_LEN = {f.name: f.max_length for f in Interface._meta.fields if getattr(f, "max_length", None)}


@dataclass
class SyncStats:
    created: int = 0
    updated: int = 0
    vanished: int = 0
    verdicts_changed: int = 0
    history: int = 0
    node_rows: int = 0
    other_rows: int = 0
    agent_failures: int = 0  # not rows: how many agents did not answer usefully
    messages: list[str] = field(default_factory=list)
    # Nodes whose pod claims changed in a listing applied without recomputing verdicts.
    touched_nodes: set[int] = field(default_factory=set)
    # What reading the cluster took from the API server (set by the cluster poll; not added up).
    cluster_read: dict[str, int] = field(default_factory=dict)

    @property
    def rows_written(self) -> int:
        return (
            self.created
            + self.updated
            + self.vanished
            + self.verdicts_changed
            + self.history
            + self.node_rows
            + self.other_rows
        )

    def add(self, other: SyncStats) -> None:
        for name in (
            "created",
            "updated",
            "vanished",
            "verdicts_changed",
            "history",
            "node_rows",
            "other_rows",
            "agent_failures",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.messages.extend(other.messages)
        self.touched_nodes |= other.touched_nodes


def clip(field_name: str, value: object) -> object:
    """A string cut to its Interface column's length."""
    limit = _MAX_LEN.get(field_name)
    if limit and isinstance(value, str) and len(value) > limit:
        return value[:limit]
    return value


def clip_row(row: dict) -> dict:
    """`row` with every string cut to its Interface column's length (in place; returned)."""
    for name, limit in _MAX_LEN.items():
        value = row.get(name)
        if isinstance(value, str) and len(value) > limit:
            row[name] = value[:limit]
    return row


def changed_fields(obj: models.Model, values: dict) -> list[str]:
    """Set `values` on `obj`; return the names of the fields whose value changed."""
    fields = [k for k, v in values.items() if getattr(obj, k) != v]
    for k in fields:
        setattr(obj, k, values[k])
    return fields


def bulk_write(
    model: type[models.Model],
    to_create: Sequence[models.Model],
    to_update: Sequence[models.Model],
    fields: set[str],
) -> int:
    """INSERT the new rows and UPDATE `fields` of the changed ones, in batches. Returns the rows
    written."""
    if to_create:
        model._default_manager.bulk_create(to_create, batch_size=BATCH_SIZE)
    if to_update:
        model._default_manager.bulk_update(to_update, sorted(fields), batch_size=BATCH_SIZE)
    return len(to_create) + len(to_update)
