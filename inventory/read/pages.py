"""How interface lists are sorted and paged: one sort table for the API and the fleet view, a
keyset cursor, a cheap offset, and the active reservation joined once.

Why it is built this way (bench/ANALYSIS.md, "Deep pages"): a list of 320,000 interfaces must
cost the same on its last page as on its first, however much history piles up.

- Every sort ends in the primary key (pages are stable) and has an index with the same columns
  in the same order (models.Interface.Meta.indexes), so PostgreSQL walks one index in order
  instead of sorting the fleet. The node's name is a column of the interface row for that reason.
- A keyset cursor (`cursor=`) names the sort key of the row a page ends at; the next page is
  `WHERE (keys) > (that row's keys) ORDER BY keys LIMIT n`: an index range scan from there, as
  cheap as the first page.
- `limit`/`offset` stays for old clients, but the offset is taken over the primary keys only
  (an index-only scan of the sort's index), then the page's rows are read by id: the join to
  the node, the cluster and the reservation is done for the 50 rows shown, never for the rows
  skipped.
- A deep offset starts from a checkpoint (PostgreSQL): the sort key of every STRIDE-th row of
  the listing, found once by hopping through the index (one recursive query) and cached per
  filter, sort and inventory version. Offset 280,000 is then a keyset step to checkpoint 280
  and fewer than STRIDE index entries, not 280,000.
- The active reservation comes from one LEFT JOIN restricted to unreleased rows (the partial
  unique index `one_active_reservation_per_interface`), not a subquery per row: released
  reservations, kept forever as history, never enter a list query.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.cache import cache
from django.core.exceptions import EmptyResultSet
from django.db import connection
from django.db.models import F, FilteredRelation, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.fields.tuple_lookups import Tuple, TupleGreaterThan, TupleLessThan
from django.utils.dateparse import parse_datetime

from inventory.models import SPEED_SORT_KEY, HistoryEntry, Interface

# The alias the speed sort orders by (models.SPEED_SORT_KEY, the expression its index holds).
SPEED_SORT = "speed_sort"

# Sort name (as the API's `ordering` spells it) -> the columns ORDER BY uses, each list ending in
# the primary key. models.Interface.Meta.indexes has one index per entry, same columns.
SORTS: dict[str, tuple[str, ...]] = {
    "node__name": ("node_name", "name", "id"),
    "name": ("name", "node_name", "id"),
    "state": ("state", "node_name", "name", "id"),
    "driver": ("driver", "node_name", "name", "id"),
    "pci_address": ("pci_address", "node_name", "name", "id"),
    "speed_mbps": (SPEED_SORT, "node_name", "name", "id"),
    "state_changed_at": ("state_changed_at", "id"),
    "last_seen_at": ("last_seen_at", "id"),
    "id": ("id",),
}
DEFAULT_SORT = "node__name"


@dataclass(frozen=True)
class Sort:
    """One of SORTS, ascending or descending (every column flips together, so one index serves
    both directions and a keyset comparison is a single row comparison)."""

    name: str
    descending: bool = False

    @property
    def columns(self) -> tuple[str, ...]:
        return SORTS[self.name]

    @property
    def token(self) -> str:
        return f"-{self.name}" if self.descending else self.name

    def order_by(self, *, reverse: bool = False) -> list[str]:
        descending = self.descending != reverse
        return [f"-{column}" if descending else column for column in self.columns]


def parse_sort(raw: str | None, *, aliases: dict[str, str] | None = None) -> Sort:
    """`name` or `-name` from SORTS (or an alias of one); ValueError for anything else."""
    if raw is None or raw == "":
        return Sort(DEFAULT_SORT)
    descending = raw.startswith("-")
    name = raw[1:] if descending else raw
    name = (aliases or {}).get(name, name)
    if name not in SORTS:
        raise ValueError(raw)
    return Sort(name, descending)


def sort_choices() -> list[str]:
    """Every value `ordering` accepts, for messages and the schema."""
    return [token for name in SORTS for token in (name, f"-{name}")]


def sorted_by(queryset: QuerySet[Interface], sort: Sort) -> QuerySet[Interface]:
    """The queryset in this sort's order (with the alias the speed sort needs)."""
    return _with_sort_alias(queryset, sort).order_by(*sort.order_by())


def _with_sort_alias(queryset: QuerySet[Interface], sort: Sort) -> QuerySet[Interface]:
    if SPEED_SORT in sort.columns:
        return queryset.annotate(**{SPEED_SORT: SPEED_SORT_KEY})
    return queryset


# --- the active reservation ----------------------------------------------------------------------


def with_active_reservation(queryset: QuerySet[Interface]) -> QuerySet[Interface]:
    """Interfaces with `cluster_name`, and `reserved_team`, `reservation_id` and
    `reserved_until` from the active reservation (None when there is none): one LEFT JOIN on the
    unreleased reservation (at most one per interface, a partial unique index guarantees it).
    The node and cluster are joined for the cluster's name only (no Node rows are built: their
    JSON facts would cost more than the page), and the columns the API does not show
    (`pinned`, `facts_digest`) are not read."""
    return queryset.defer("pinned", "facts_digest").annotate(
        cluster_name=F("node__cluster__name"),
        active_reservation=FilteredRelation(
            "reservations", condition=Q(reservations__released_at__isnull=True)
        ),
        reserved_team=F("active_reservation__team__name"),
        reservation_id=F("active_reservation__id"),
        reserved_until=F("active_reservation__expires_at"),
    )


def rows_in_order(ids: Sequence[int], queryset: QuerySet[Interface]) -> list[Interface]:
    """The rows of these ids, in this order (one query by primary key)."""
    if not ids:
        return []
    by_id = {row.pk: row for row in queryset.filter(pk__in=ids).order_by()}
    return [by_id[pk] for pk in ids if pk in by_id]


# --- offset pages -------------------------------------------------------------------------------


def offset_page_ids(
    queryset: QuerySet[Interface], sort: Sort, *, offset: int, limit: int, version: str
) -> list[int]:
    """The ids of one page by offset: the skipped rows are index entries of the sort's index
    (primary keys only), never joined rows, and at most STRIDE of them (see checkpoints)."""
    ordered, skip = _from_checkpoint(queryset, sort, offset, version)
    return list(ordered.values_list("id", flat=True)[skip : skip + limit])


def offset_page(
    queryset: QuerySet[Interface], sort: Sort, *, offset: int, limit: int, version: str
) -> KeysetPage:
    """A page by offset (a jump to page N), with the cursors of its neighbours, so that the
    next step from it is a keyset step."""
    ordered, skip = _from_checkpoint(queryset, sort, offset, version)
    rows = list(ordered.values_list("id", *sort.columns)[skip : skip + limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    if not rows:
        return KeysetPage(ids=[], next=None, previous=None)
    return KeysetPage(
        ids=[row[0] for row in rows],
        next=Cursor(sort, tuple(rows[-1][1:])) if more else None,
        previous=Cursor(sort, tuple(rows[0][1:]), before=True) if offset else None,
    )


# --- checkpoints --------------------------------------------------------------------------------

# Rows between two checkpoints: an offset page walks fewer index entries than this (plus its
# limit); finding a checkpoint costs one index descent and a walk of this many entries.
STRIDE = 1_000


def _from_checkpoint(
    queryset: QuerySet[Interface], sort: Sort, offset: int, version: str
) -> tuple[QuerySet[Interface], int]:
    """The sorted listing to slice, started at the deepest checkpoint at or before `offset`,
    and how many rows are left to skip in it. Checkpoints are sort keys of rows 1,000, 2,000, …
    of this filtered listing, kept per inventory version for COUNT_TTL like a count (a change
    that moves no verdict, a rename, may shift an offset page by the rows it moved for that
    long); only as deep as someone asked, extended by later, deeper requests. SQLite, the
    embedded default for small fleets, walks the offset as it is."""
    ordered = sorted_by(queryset, sort)
    wanted = offset // STRIDE
    if not wanted or not checkpoints_apply():
        return ordered, offset
    listing = _listing_digest(queryset)
    if listing is None:
        return ordered, offset  # no row: nothing to skip
    key = f"interface-checkpoints:{sort.token}:{listing}:{version}"
    keys, complete = cache.get(key) or ([], False)
    if len(keys) < wanted and not complete:
        missing = wanted - len(keys)
        found = _hop(queryset, sort, after=keys[-1] if keys else None, hops=missing)
        keys, complete = [*keys, *found], len(found) < missing
        cache.set(key, (keys, complete), timeout=COUNT_TTL)
    used = min(wanted, len(keys))
    if not used:
        return ordered, offset
    return _beyond(ordered, sort, keys[used - 1]), offset - used * STRIDE


def checkpoints_apply() -> bool:
    """Whether offsets start at checkpoints here: the hop query is PostgreSQL's (LATERAL)."""
    return connection.vendor == "postgresql"


def _listing_digest(queryset: QuerySet[Interface]) -> str | None:
    """Names a filtered listing, whichever door built it: a hash of its SQL and parameters.
    None when Django knows no row can match without asking the database (a filter value out
    of the column's range, `speed_mbps=-9223372036854775807`): it has no SQL."""
    try:
        sql, params = queryset.order_by().values_list("id").query.sql_with_params()
    except EmptyResultSet:
        return None
    return hashlib.blake2b(f"{sql}\n{params!r}".encode(), digest_size=12).hexdigest()


def _hop(
    queryset: QuerySet[Interface], sort: Sort, *, after: tuple[Any, ...] | None, hops: int
) -> list[tuple[Any, ...]]:
    """The sort keys of the next `hops` checkpoints after `after` (None: from the start), in one
    recursive query: each step is an index range scan from the last checkpoint, STRIDE entries
    on (`OFFSET STRIDE - 1 LIMIT 1`), so finding 280 checkpoints walks the index once."""
    names = [f'"k{index}"' for index in range(len(sort.columns))]
    base = _with_sort_alias(queryset, sort)
    first = base if after is None else _beyond(base, sort, after)
    # The step compares with the last checkpoint's columns (fixed names, no input in them).
    last = tuple(RawSQL(f'"hops".{name}', ()) for name in names)  # noqa: S611
    step = _beyond(base, sort, last)
    first_sql, first_params = _stride_end(first, sort)
    step_sql, step_params = _stride_end(step, sort)
    columns = ", ".join(names)
    # Django's own SQL of the two listings, their values passed as parameters.
    sql = (
        f'WITH RECURSIVE "hops"("n", {columns}) AS ('  # noqa: S608
        f'SELECT 1, "first".* FROM ({first_sql}) "first"'
        f' UNION ALL SELECT "hops"."n" + 1, "step".* FROM "hops"'
        f' CROSS JOIN LATERAL ({step_sql}) "step" WHERE "hops"."n" < %s'
        f') SELECT {columns} FROM "hops" ORDER BY "n"'
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, (*first_params, *step_params, hops))
        return [tuple(row) for row in cursor.fetchall()]


def _stride_end(queryset: QuerySet[Interface], sort: Sort) -> tuple[str, tuple[Any, ...]]:
    """SQL of the sort key STRIDE rows into this (sorted) listing."""
    page = queryset.order_by(*sort.order_by()).values_list(*sort.columns)[STRIDE - 1 : STRIDE]
    return page.query.sql_with_params()


def _beyond(
    queryset: QuerySet[Interface], sort: Sort, keys: tuple[Any, ...], *, before: bool = False
) -> QuerySet[Interface]:
    """The rows after the row with these sort keys (`before`: the rows before it), in the
    direction of the sort: one row comparison, the sort index's range condition."""
    # Walking down the order (a descending sort, or backwards through an ascending one) wants
    # the rows below the key.
    below = sort.descending != before
    compare = TupleLessThan if below else TupleGreaterThan
    return queryset.filter(compare(Tuple(*(F(column) for column in sort.columns)), keys))


# --- keyset cursors -----------------------------------------------------------------------------


class BadCursor(ValueError):
    """A cursor that this listing did not hand out (or not for this sort)."""


@dataclass(frozen=True)
class Cursor:
    """A position between two rows: the sort key of the row the position follows (`before` is
    False: the page after it) or precedes (`before` is True: the page before it)."""

    sort: Sort
    keys: tuple[Any, ...]
    before: bool = False

    def encode(self) -> str:
        body = {"o": self.sort.token, "k": [_plain(value) for value in self.keys]}
        if self.before:
            body["b"] = 1
        raw = json.dumps(body, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(token: str, sort: Sort) -> Cursor:
    """The cursor a token stands for; BadCursor when it is not one of ours or belongs to another
    sort (a cursor is only meaningful in the order that produced it)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        body = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadCursor("not a cursor of this list") from None
    if not isinstance(body, dict) or not isinstance(body.get("k"), list):
        raise BadCursor("not a cursor of this list")
    if body.get("o") != sort.token:
        raise BadCursor(f"this cursor belongs to ordering {body.get('o')!r}, not {sort.token!r}")
    values = body["k"]
    if len(values) != len(sort.columns) or body.get("b", 0) not in (0, 1):
        raise BadCursor("not a cursor of this list")
    keys = tuple(_typed(column, value) for column, value in zip(sort.columns, values, strict=True))
    return Cursor(sort=sort, keys=keys, before=bool(body.get("b", 0)))


def _plain(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _typed(column: str, value: Any) -> Any:
    """A cursor value as the column's Python type; BadCursor for anything the column cannot
    hold (a cursor is untrusted input: it must never reach the database as the wrong type)."""
    field = Interface._meta.get_field("speed_mbps" if column == SPEED_SORT else column)
    internal = field.get_internal_type()
    if internal == "DateTimeField":
        try:
            parsed = parse_datetime(value) if isinstance(value, str) else None
            # In UTC: PostgreSQL refuses offsets beyond +-15:59 that Python accepts.
            utc = parsed.astimezone(UTC) if parsed is not None and parsed.tzinfo else None
        except (ValueError, OverflowError):
            utc = None
        if utc is None:
            raise BadCursor("not a cursor of this list")
        return utc
    if "Integer" in internal or "Auto" in internal:
        if isinstance(value, bool) or not isinstance(value, int) or abs(value) >= 2**63:
            raise BadCursor("not a cursor of this list")
        return value
    if not isinstance(value, str) or len(value) > field.max_length or "\x00" in value:
        raise BadCursor("not a cursor of this list")
    return value


@dataclass(frozen=True)
class KeysetPage:
    ids: list[int]
    next: Cursor | None
    previous: Cursor | None


def keyset_page_ids(
    queryset: QuerySet[Interface], sort: Sort, *, cursor: Cursor | None, limit: int
) -> KeysetPage:
    """One page from a cursor (None: the first page): a range scan of the sort's index from the
    cursor's row on, whatever the page's depth."""
    columns = sort.columns
    before = cursor is not None and cursor.before
    queryset = _with_sort_alias(queryset, sort)
    if cursor is not None:
        queryset = _beyond(queryset, sort, cursor.keys, before=before)
    rows = list(
        queryset.order_by(*sort.order_by(reverse=before)).values_list("id", *columns)[: limit + 1]
    )
    more = len(rows) > limit
    rows = rows[:limit]
    if before:
        rows.reverse()
    keys = [tuple(row[1:]) for row in rows]
    ids = [row[0] for row in rows]
    if not rows:
        # Past either end: offer the way back to where the cursor pointed.
        back = None if cursor is None else Cursor(sort, cursor.keys, before=not before)
        return KeysetPage(ids=[], next=back if before else None, previous=None if before else back)
    has_next = more if not before else True
    has_previous = more if before else cursor is not None
    return KeysetPage(
        ids=ids,
        next=Cursor(sort, keys[-1]) if has_next else None,
        previous=Cursor(sort, keys[0], before=True) if has_previous else None,
    )


# --- counts -------------------------------------------------------------------------------------

# How long a count may be reused when nothing announced a change (see inventory_version).
COUNT_TTL = 10  # seconds


def inventory_version() -> str:
    """Moves whenever a verdict changes (every change of state or holder appends history) or an
    interface is added (interfaces are never deleted): two lookups at the end of primary keys,
    in one query."""
    with connection.cursor() as cursor:
        cursor.execute(_NEWEST_IDS)
        history, newest = cursor.fetchone()
    return f"{history or 0}:{newest or 0}"


_NEWEST_IDS = (
    f"SELECT (SELECT max(id) FROM {HistoryEntry._meta.db_table}),"  # noqa: S608 (table names)
    f" (SELECT max(id) FROM {Interface._meta.db_table})"
)


def cached_count(queryset: QuerySet[Interface], version: str) -> int:
    """COUNT(*) of a filtered list, reused per listing and inventory version (`version`, from
    inventory_version()): counting 320,000 rows costs more than the page itself. A filter on a
    fact that changed without a verdict change (a driver, a name) may be COUNT_TTL seconds
    behind."""
    listing = _listing_digest(queryset)
    if listing is None:
        return 0
    key = f"interface-count:{listing}:{version}"
    count = cache.get(key)
    if count is None:
        count = queryset.count()
        cache.set(key, count, timeout=COUNT_TTL)
    return count
