"""Fleet-wide admission reviews' device classes (read/admission.py's Index remembers them).

A review of a pod that may land on any node, or of a NAD without a node list, judges the
device its selector picks on every node. Devices alike in every fact the rules branch on form
one class (rules/admission/fleet.py), so `device_classes` answers O(classes) rows instead of
one per node:

- **Read in full**: the interfaces the selector picks, one row each (class-key facts, device
  facts, node, active reservation's team), grouped in Python (`grouped`, `classes_of`); or,
  when the answer cannot be remembered, the one grouped query `_CLASSES` (the same classes,
  grouped by PostgreSQL).
- **Remembered** until PostgreSQL notifies a commit (read/changes.py, migrations 0015 and
  0018): the answer per index and (selector, value, nodes), its grouped rows per cluster (an
  index rebuilt every poll interval groups them again, no query). A notification names the
  interfaces or nodes it changed: the next review re-reads only the rows of those interfaces
  and nodes (one indexed query; a row that now matches is added, one that no longer matches is
  dropped) and moves just them between classes (`patched`). A change it does not name (a team,
  a TRUNCATE, more ids than a notification holds, a listener that reconnected or went silent)
  reads in full.

An answer computed from a read that started at generation G (read BEFORE the query) is true
while the generation is G, and patching it with what the generations after G changed makes it
true at the generation read before the patch: a commit landing during a read is read again by
the next review.
"""

from __future__ import annotations

import bisect
import json
import threading
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from operator import itemgetter
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import connection

from inventory.models import Interface, Node, Reservation
from inventory.read import changes, facts
from inventory.rules import nad
from inventory.rules.admission.decide import NAMED_NODES, DeviceSelector
from inventory.rules.crosscheck import UPLINK_REASON
from inventory.rules.nad.fleet import DeviceClass
from inventory.rules.states import OwnershipState

if TYPE_CHECKING:
    from inventory.read.admission import Index

_INTERFACE = Interface._meta.db_table
_NODE = Node._meta.db_table
_RESERVATION = Reservation._meta.db_table
_GROUP = Group._meta.db_table
_COLUMNS = ", ".join(f"i.{column}" for column in facts.DEVICE_COLUMNS)
_RESERVED = OwnershipState.RESERVED.value

# The facts the rules branch on (rules/nad/devices.py, lint.py, checks.py): devices alike in
# all of them yield the same finding codes (rules/admission/fleet.py). The reservation's team,
# a reserved row's holder (its team when no reservation row says), whether the reason names
# the node's uplink, and the node's host-device plugin (its CNI facts) included.
_CLASS_KEY = (
    "i.state, i.kind, i.wireless, i.driver, i.has_netdev, i.sriov_num_vfs, t.team,"
    " CASE WHEN i.state = %(reserved)s THEN i.holder END,"
    " CASE WHEN i.state = %(system)s THEN i.reason ~* %(primary)s END, n.cni -> 'host_device'"
)
# The interfaces of the cluster's nodes with their active reservation's team (hash-joined:
# few). Only table names are interpolated into these queries ({column} is one of
# SELECTOR_COLUMNS' values); every value is a query parameter.
_FROM = (
    f" FROM {_INTERFACE} i JOIN {_NODE} n ON n.id = i.node_id"  # noqa: S608
    f" LEFT JOIN (SELECT r.interface_id, g.name AS team FROM {_RESERVATION} r"
    f" JOIN {_GROUP} g ON g.id = r.team_id WHERE r.released_at IS NULL) t"
    " ON t.interface_id = i.id"
    " WHERE n.cluster_id = %(cluster)s AND n.in_cluster AND i.{column} = %(value)s{nodes}"
)
# One row per class member whose facts are read (the first NAMED_NODES in node-name order);
# the first row of a class also carries the ids of all its members' nodes, in that order.
_CLASSES = (
    'WITH c AS (SELECT (array_agg(i.id ORDER BY i.node_name COLLATE "C"))[1:%(named)s] AS ids,'  # noqa: S608
    ' array_agg(i.node_id ORDER BY i.node_name COLLATE "C") AS nodes, min(t.team) AS team'
    f"{_FROM} GROUP BY {_CLASS_KEY})"
    f" SELECT CASE WHEN r.ord = 1 THEN c.nodes END, {_COLUMNS}, i.node_id, c.team"
    f" FROM c CROSS JOIN LATERAL unnest(c.ids) WITH ORDINALITY AS r(id, ord)"
    f" JOIN {_INTERFACE} i ON i.id = r.id ORDER BY c.nodes[1], r.ord"
)
# One row per matching interface: id, node name (its sort key), node id, DEVICE_COLUMNS, team,
# the uplink reason's flag, the node's host-device facts (the class key's last three).
_ROWS = (
    f"SELECT i.id, i.node_name, i.node_id, {_COLUMNS}, t.team,"
    " CASE WHEN i.state = %(system)s THEN i.reason ~* %(primary)s END, n.cni -> 'host_device'"
    f"{_FROM}{{changed}}"
)
SELECTOR_COLUMNS = {"device": "name", "hwaddr": "mac", "pciBusID": "pci_address"}
_DEVICE = len(facts.DEVICE_COLUMNS)
_NAME = itemgetter(0)  # a row's node name

# A remembered row: (node name, node id, class key, DEVICE_COLUMNS values); by interface id.
Row = tuple[str, int, tuple, tuple]

# Device-class answers remembered per index (selectors and placements are made up by users),
# and sets of rows remembered per cluster.
CLASS_ENTRIES = 256
# Rows remembered over all sets (the oldest sets are forgotten to make room; a set larger than
# this is not kept, and is read in full after a change): 16 selectors of a 5,000-node fleet.
ROWS_KEPT = 80_000
# Changed interfaces and nodes above which a full read is cheaper than a patch.
PATCH_INTERFACES = 2_000
PATCH_NODES = 200
_CLASSES_LOCK = threading.Lock()


@dataclass(frozen=True, slots=True)
class Entry:
    """A remembered answer (in its Index): the change generation its read started at, and the
    classes (None: judge node by node)."""

    generation: int
    classes: tuple[DeviceClass, ...] | None


@dataclass(frozen=True, slots=True)
class Rows:
    """The rows an answer was grouped from and the generation they are true at. Kept per
    cluster, not per index: they do not depend on it (a rebuilt index groups them again)."""

    generation: int
    grouped: Grouped


# (cluster id, selector kind, value, candidate node ids or None) -> Rows.
_KEPT: dict[tuple, Rows] = {}


def forget() -> None:
    """Forget every remembered set of rows (the indexes' answers go with their indexes)."""
    with _CLASSES_LOCK:
        _KEPT.clear()


def device_classes(
    index: Index,
    *,
    selector: DeviceSelector,
    nodes: Collection[str] | None = None,
    count: Callable[[str], None] | None = None,
) -> list[DeviceClass] | None:
    """The interfaces `selector` picks on `nodes` (every node of the index when None), grouped
    into classes that the rules cannot tell apart, with the facts of each class's first
    NAMED_NODES members. None when a node has two matching interfaces (a MAC shared by bond
    members) or is not in the index yet (added since it was built): the caller then judges
    node by node.

    As fresh as devices() (a reservation committed before the review is seen): answered from
    memory when nothing was committed since the same read under the same index, patched with
    the rows a commit changed when its notification named them. `count` is told "hit"
    (remembered), "patch" (the rows remembered, the changed ones read again, grouped again;
    no query when only the index was rebuilt), "miss" (read in full and remembered) or
    "bypass" (read, the cache not usable). PostgreSQL only (arrays, `~*`): None on the
    embedded SQLite, which judges node by node."""
    if connection.vendor != "postgresql":
        return None
    column = SELECTOR_COLUMNS.get(selector.selector)
    if column is None or index.cluster_id is None:
        return []
    key = (selector.selector, selector.value, None if nodes is None else tuple(nodes))
    generation = _cache_generation()
    if generation is None:
        if count:
            count("bypass")
        return read_classes(index, selector, nodes)
    found: Entry | None = index.classes.get(key)
    if found is not None and found.generation == generation:
        if count:
            count("hit")
        return None if found.classes is None else list(found.classes)
    scope = None if nodes is None else tuple(sorted(_params(index, selector, nodes)["ids"]))
    rows_key = (index.cluster_id, selector.selector, selector.value, scope)
    kept = _KEPT.get(rows_key)
    changed = None
    if kept is not None:
        changed = changes.LISTENER.changed_between(kept.generation, generation)
        if changed is not None and (
            len(changed.interfaces) > PATCH_INTERFACES or len(changed.nodes) > PATCH_NODES
        ):
            changed = None
    if changed is not None and kept is not None:
        if count:
            count("patch")
        rows = patched(kept.grouped, changed, read_rows(index, selector, nodes, changed))
    else:
        if count:
            count("miss")
        rows = grouped(read_rows(index, selector, nodes))
    classes = classes_of(index, rows)
    entry = Entry(generation, None if classes is None else tuple(classes))
    _remember(index, key, entry, rows_key, Rows(generation, rows))
    return classes


def _remember(index: Index, key: tuple, entry: Entry, rows_key: tuple, rows: Rows) -> None:
    with _CLASSES_LOCK:
        current = index.classes.get(key)
        if current is None or current.generation <= entry.generation:
            if len(index.classes) >= CLASS_ENTRIES and key not in index.classes:
                del index.classes[next(iter(index.classes))]  # the oldest
            index.classes[key] = entry
        kept = _KEPT.get(rows_key)
        if kept is not None and kept.generation > rows.generation:
            return  # newer rows were stored meanwhile
        _KEPT.pop(rows_key, None)
        if len(rows.grouped.rows) > ROWS_KEPT:
            return
        total = sum(len(r.grouped.rows) for r in _KEPT.values())
        while _KEPT and (total + len(rows.grouped.rows) > ROWS_KEPT or len(_KEPT) >= CLASS_ENTRIES):
            total -= len(_KEPT.pop(next(iter(_KEPT))).grouped.rows)  # the oldest
        _KEPT[rows_key] = rows


def _cache_generation() -> int | None:
    """The change generation to read and remember device classes at, read BEFORE the query
    (a commit landing during it moves the generation on, so that answer is never served as
    is); None when remembered answers must not be used:

    - the setting WEBHOOK_CLASS_CACHE is off;
    - inside a transaction (it may see its own uncommitted writes, which nobody is told of);
    - the change listener is not LISTENing in this process (starting, reconnecting, down):
      a commit would go unnoticed."""
    if not settings.WEBHOOK_CLASS_CACHE or connection.in_atomic_block:
        return None
    generation = changes.LISTENER.generation
    return generation if changes.LISTENER.start() else None


def _params(index: Index, selector: DeviceSelector, nodes: Collection[str] | None) -> dict:
    return {
        "reserved": _RESERVED,
        "system": OwnershipState.SYSTEM.value,
        "primary": UPLINK_REASON.pattern,
        "named": NAMED_NODES,
        "cluster": index.cluster_id,
        "value": selector.value,
        "ids": [index.nodes[name].id for name in nodes or () if name in index.nodes],
    }


def _sql(template: str, selector: DeviceSelector, nodes: Collection[str] | None) -> str:
    scope = "" if nodes is None else " AND i.node_id = ANY(%(ids)s)"
    column = SELECTOR_COLUMNS[selector.selector]
    return template.replace("{column}", column).replace("{nodes}", scope)


def read_rows(
    index: Index,
    selector: DeviceSelector,
    nodes: Collection[str] | None,
    changed: changes.Changed | None = None,
) -> dict[int, Row]:
    """The rows `selector` picks on `nodes` (every node when None); only those of the changed
    interfaces and nodes when `changed` is given (one query, by primary key or node index)."""
    params = _params(index, selector, nodes)
    only = []
    if changed is not None:
        if changed.interfaces:
            only.append("i.id = ANY(%(interfaces)s)")
            params["interfaces"] = sorted(changed.interfaces)
        if changed.nodes:
            only.append("i.node_id = ANY(%(changed_nodes)s)")
            params["changed_nodes"] = sorted(changed.nodes)
        if not only:
            return {}
    sql = _sql(_ROWS, selector, nodes).replace(
        "{changed}", f" AND ({' OR '.join(only)})" if only else ""
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return dict(map(_row, cursor.fetchall()))


def _row(values: tuple) -> tuple[int, Row]:
    interface_id, node_name, node_id = values[:3]
    device = values[3 : 3 + _DEVICE]
    team, primary, plugin = values[3 + _DEVICE :]
    # (name, mac, pci_address, kind, wireless, driver, state, reason, holder, has_netdev,
    #  sriov_num_vfs, pf_pci_address): the class key as _CLASS_KEY groups it.
    state = device[6]
    key = (
        state,
        device[3],
        device[4],
        device[5],
        device[9],
        device[10],
        team,
        device[8] if state == _RESERVED else None,
        primary,
        _frozen(plugin),
    )
    interned = _KEYS.get(key)
    if interned is None:
        if len(_KEYS) >= 4096:
            _KEYS.clear()  # only identity is lost: grouped() merges equal keys
        interned = _KEYS[key] = key
    return interface_id, (node_name, node_id, interned, device)


@dataclass(frozen=True, slots=True)
class Grouped:
    """Rows by interface id and by class key (each class's rows in node-name order: code
    points, as COLLATE "C" orders UTF-8), and how many rows each node has. Never modified once
    made: patched() makes a new one, sharing what did not change."""

    rows: dict[int, Row]
    members: dict[tuple, list[Row]]
    per_node: dict[int, int]
    shared: int  # nodes with more than one row


def grouped(rows: dict[int, Row]) -> Grouped:
    """`rows` grouped in full."""
    ordered = sorted(rows.values(), key=_NAME)
    # Rows read while the same key was interned share one key object (_row): grouped by its
    # identity first (cheap), then the groups whose keys are equal merged (few).
    same: dict[int, list[Row]] = {}
    for row in ordered:
        found = same.get(id(row[2]))
        if found is None:
            same[id(row[2])] = [row]
        else:
            found.append(row)
    members: dict[tuple, list[Row]] = {}
    for group_rows in same.values():
        found = members.get(group_rows[0][2])
        if found is None:
            members[group_rows[0][2]] = group_rows
        else:
            found.extend(group_rows)
            found.sort(key=_NAME)
    per_node = dict(Counter(map(itemgetter(1), ordered)))
    return Grouped(rows, members, per_node, sum(1 for n in per_node.values() if n > 1))


def patched(kept: Grouped, changed: changes.Changed, fresh: dict[int, Row]) -> Grouped:
    """`kept` without the rows of the changed interfaces and nodes, with `fresh` (their rows
    read again) instead: only the classes they leave or join are copied and changed."""
    rows = dict(kept.rows)
    members = dict(kept.members)
    per_node = dict(kept.per_node)
    shared = kept.shared
    copied: set[tuple] = set()

    def class_of(key: tuple) -> list[Row]:
        if key not in copied:
            copied.add(key)
            members[key] = list(members.get(key, ()))
        return members[key]

    gone = [i for i in changed.interfaces if i in rows]
    if changed.nodes:
        gone += [i for i, row in rows.items() if row[1] in changed.nodes]
    for interface_id in gone:
        row = rows.pop(interface_id, None)
        if row is None:
            continue  # named twice (its id and its node)
        members_of = class_of(row[2])
        at = bisect.bisect_left(members_of, row[0], key=_NAME)
        while members_of[at] is not row:
            at += 1
        del members_of[at]
        left = per_node[row[1]] - 1
        if left == 1:
            shared -= 1
        if left:
            per_node[row[1]] = left
        else:
            del per_node[row[1]]
    for interface_id, row in fresh.items():
        rows[interface_id] = row
        bisect.insort(class_of(row[2]), row, key=_NAME)
        now = per_node.get(row[1], 0) + 1
        if now == 2:
            shared += 1
        per_node[row[1]] = now
    for key in copied:
        if not members[key]:
            del members[key]
    return Grouped(rows, members, per_node, shared)


def classes_of(index: Index, kept: Grouped) -> list[DeviceClass] | None:
    """The classes as the grouped query _CLASSES answers them: members in node-name order,
    classes in the order of their first member's node id, the facts of the first NAMED_NODES
    members. None when a node has two rows or is not in the index."""
    if kept.shared:
        return None  # a node with two matching interfaces
    by_id, name_of = index.by_id, index.names_by_id
    classes = []
    for class_rows in sorted(kept.members.values(), key=lambda m: m[0][1]):
        try:
            names = tuple([name_of[row[1]] for row in class_rows])
        except KeyError:
            return None  # a node added since the index was built
        devices = []
        for _name, node_id, key, device in class_rows[:NAMED_NODES]:
            node = by_id[node_id]
            devices.append(
                facts.device_from_values(
                    node.name, device, reserved_team=key[6] or "", plugin=node.plugin
                )
            )
        classes.append(DeviceClass(tuple(devices), names))
    return classes


def group(index: Index, rows: dict[int, Row]) -> list[DeviceClass] | None:
    """The classes of `rows` (grouped in full)."""
    return classes_of(index, grouped(rows))


def read_classes(
    index: Index, selector: DeviceSelector, nodes: Collection[str] | None
) -> list[DeviceClass] | None:
    """device_classes() from the database without remembering: the one grouped query (rows
    O(classes))."""
    with connection.cursor() as cursor:
        cursor.execute(_sql(_CLASSES, selector, nodes), _params(index, selector, nodes))
        rows = cursor.fetchall()
    by_id, name_of = index.by_id, index.names_by_id
    classes: list[tuple[list[nad.DeviceFacts], tuple[str, ...]]] = []
    ids: set[int] = set()
    members = 0
    for row in rows:
        node_ids, values, (node_id, team) = row[0], row[1:-2], row[-2:]
        if node_ids is not None:
            ids.update(node_ids)
            members += len(node_ids)
            try:
                classes.append(([], tuple(map(name_of.__getitem__, node_ids))))
            except KeyError:
                return None  # a node added since the index was built
        node = by_id[node_id]
        classes[-1][0].append(
            facts.device_from_values(
                node.name, values, reserved_team=team or "", plugin=node.plugin
            )
        )
    if members != len(ids):
        return None  # a node with two matching interfaces
    return [DeviceClass(tuple(devices), names) for devices, names in classes]


# Class keys by themselves: rows read with equal keys share one object (grouped() is faster).
_KEYS: dict[tuple, tuple] = {}
# The node's host-device facts (jsonb, read as its text) as a hashable value equal where
# PostgreSQL's jsonb equality says equal (1 and 1.0 alike; true and 1 not), parsed once per text.
_PLUGINS: dict[str, Any] = {}


def _frozen(value: Any) -> Any:
    if value is None:
        return None  # no host_device key (SQL NULL), unlike a JSON null
    if not isinstance(value, str):
        return _freeze(value)
    found = _PLUGINS.get(value)
    if found is None:
        found = _freeze(json.loads(value))
        if len(_PLUGINS) < 1024:
            _PLUGINS[value] = found
    return found


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return ("object", frozenset((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return ("array", tuple(_freeze(v) for v in value))
    if isinstance(value, bool) or value is None:
        return ("literal", value)
    if isinstance(value, int | float):
        return ("number", value)
    return ("string", value)
