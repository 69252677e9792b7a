"""The interface list's query plans on PostgreSQL, with a fleet and 10,000 released reservations
in the database: every page (first, deep offset, deep keyset cursor, every sort in both
directions, filtered) is chosen by an index of the interface table, never by a sequential scan
of it, and the offset is never taken over the join to nodes, clusters and reservations.

Plans, not times: PostgreSQL's EXPLAIN of the very queries the API ran (captured from the
request), after VACUUM ANALYZE as autovacuum leaves a table in production.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.auth.models import Group, User
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from knox.models import AuthToken

from inventory.choices import IdentityKind, OwnershipState
from inventory.models import Cluster, Interface, Node, Reservation
from inventory.read import pages

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db]

NODES, NICS = 1_500, 16
RELEASED = 10_000
STATES = [OwnershipState.SYSTEM, OwnershipState.SYSTEM, OwnershipState.CNI] + [
    OwnershipState.FREE
] * (NICS - 3)


def _fill() -> dict[str, Any]:
    cluster = Cluster.objects.create(name="plans")
    nodes = Node.objects.bulk_create(
        Node(cluster=cluster, name=f"plan-{index:05d}", ready=True) for index in range(NODES)
    )
    now = timezone.now()
    interfaces = Interface.objects.bulk_create(
        (
            Interface(
                node=node,
                node_name=node.name,
                identity=f"0000:{index:02x}:{port:02x}.0",
                identity_kind=IdentityKind.PCI,
                name=f"ens{port}f0",
                driver="ice" if port > 2 else "virtio_net",
                pci_address=f"0000:{index % 256:02x}:{port:02x}.0",
                speed_mbps=None if port == 0 else 25_000,
                mac=f"02:00:{index >> 8 & 255:02x}:{index & 255:02x}:00:{port:02x}",
                state=STATES[port],
                state_changed_at=now - timedelta(seconds=index * NICS + port),
                last_seen_at=now - timedelta(seconds=port),
            )
            for index, node in enumerate(nodes)
            for port in range(NICS)
        ),
        batch_size=2_000,
    )
    team = Group.objects.create(name="plan-team")
    user = User.objects.create(username="plan-user")
    free = [i for i in interfaces if i.state == OwnershipState.FREE]
    # History that lists must never pay for: ten released reservations on each of 1,000 NICs.
    Reservation.objects.bulk_create(
        (
            Reservation(
                interface=free[number % 1_000],
                team=team,
                created_by=user,
                purpose="earlier",
                starts_at=now - timedelta(days=30, minutes=number),
                expires_at=now - timedelta(days=29),
                released_at=now - timedelta(days=29),
                released_by=user,
                release_reason="released",
            )
            for number in range(RELEASED)
        ),
        batch_size=2_000,
    )
    for interface in free[:5]:
        Reservation.objects.create(
            interface=interface,
            team=team,
            created_by=user,
            purpose="now",
            expires_at=now + timedelta(days=1),
        )
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    _, token = AuthToken.objects.create(user)
    return {"token": token, "team": team.name}


@pytest.fixture(scope="module")
def fleet(django_db_setup, django_db_blocker) -> Iterator[dict[str, Any]]:
    """One committed fleet for the module (VACUUM cannot run in a test's transaction)."""
    with django_db_blocker.unblock():
        if connection.vendor != "postgresql":
            pytest.skip("query plans are PostgreSQL's (set DATABASE_URL)")
        try:
            yield _fill()
        finally:
            with connection.cursor() as cursor:
                cursor.execute(
                    "TRUNCATE inventory_reservation, inventory_interface, inventory_node, "
                    "inventory_cluster, knox_authtoken, auth_user_groups, auth_user, auth_group "
                    "CASCADE"
                )


def _plan(sql: str) -> dict[str, Any]:
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (FORMAT JSON) " + sql)
        (row,) = cursor.fetchone()
    return (json.loads(row) if isinstance(row, str) else row)[0]["Plan"]


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _interface_scans(plan: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in _nodes(plan) if n.get("Relation Name") == "inventory_interface"]


def _list_queries(client, url: str, token: str) -> list[str]:
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, HTTP_AUTHORIZATION=f"Token {token}")
    assert response.status_code == 200, response.content[:300]
    return [q["sql"] for q in captured.captured_queries if "inventory_interface" in q["sql"]]


def _page_query(queries: list[str]) -> str:
    """The query that chose the page: the one ordered over the interface table (not the one
    that found its checkpoints)."""
    (chosen,) = [
        q for q in queries if "ORDER BY" in q and "COUNT(" not in q and "WITH RECURSIVE" not in q
    ]
    return chosen


def _assert_page_plan(sql: str) -> None:
    plan = _plan(sql)
    scans = _interface_scans(plan)
    assert scans, sql
    assert all(scan["Node Type"] != "Seq Scan" for scan in scans), (sql, plan)
    # The page comes out of the index already in order: no sort of the fleet.
    assert not [n for n in _nodes(plan) if n["Node Type"] in ("Sort", "Incremental Sort")], plan
    # Only the interface table: the skipped rows are index entries, not joined rows.
    assert " JOIN " not in sql, sql


def _deep_cursor(sort: pages.Sort, depth: int) -> str:
    ordered = pages.sorted_by(Interface.objects.all(), sort)
    keys = ordered.values_list(*sort.columns)[depth]
    return pages.Cursor(sort, tuple(keys)).encode()


def test_the_first_and_a_deep_offset_page_walk_the_sort_index(client, fleet):
    for url in ("/api/v1/interfaces/", "/api/v1/interfaces/?offset=22000&limit=50"):
        queries = _list_queries(client, url, fleet["token"])
        chosen = _page_query(queries)
        _assert_page_plan(chosen)
        # The rows of the page are then read by id, with their joins, and no OFFSET.
        (rows,) = [q for q in queries if "JOIN" in q and "WITH RECURSIVE" not in q]
        assert "OFFSET" not in rows and '"inventory_interface"."id" IN' in rows
        assert all(s["Node Type"] != "Seq Scan" for s in _interface_scans(_plan(rows)))


@pytest.mark.parametrize("ordering", ["node__name", "-state", "speed_mbps", "-state_changed_at"])
def test_a_deep_offset_starts_at_a_checkpoint_found_by_hopping_the_index(client, fleet, ordering):
    """The first deep request finds the checkpoints: one index descent per 1,000 rows, each
    step's scan starting at the last checkpoint, nothing sorted but the checkpoints' numbers.
    The page then starts at the checkpoint (a range condition) and skips fewer than 1,000."""
    cache.clear()
    url = f"/api/v1/interfaces/?ordering={ordering}&offset=22050&limit=50"
    queries = _list_queries(client, url, fleet["token"])
    (hop,) = [q for q in queries if "WITH RECURSIVE" in q]
    plan = _plan(hop)
    scans = _interface_scans(plan)
    assert scans and all(s["Node Type"] != "Seq Scan" for s in scans), plan
    assert all("Index Cond" in s for s in scans[1:]), plan  # every step after the first
    sorts = [n for n in _nodes(plan) if n["Node Type"] in ("Sort", "Incremental Sort")]
    assert [n["Sort Key"] for n in sorts] in ([], [["hops.n"]]), plan
    chosen = _page_query(queries)
    assert "OFFSET 50" in chosen, chosen
    _assert_page_plan(chosen)
    assert all("Index Cond" in s for s in _interface_scans(_plan(chosen))), chosen
    # The next deep request of this listing does not hop again.
    again = _list_queries(client, url.replace("22050", "21000"), fleet["token"])
    assert not [q for q in again if "WITH RECURSIVE" in q]
    assert "OFFSET" not in _page_query(again)


@pytest.mark.parametrize("ordering", pages.sort_choices())
def test_every_offered_ordering_has_an_index_at_depth(client, fleet, ordering):
    queries = _list_queries(
        client, f"/api/v1/interfaces/?ordering={ordering}&offset=20000", fleet["token"]
    )
    _assert_page_plan(_page_query(queries))


@pytest.mark.parametrize("ordering", ["node__name", "-state", "speed_mbps", "-state_changed_at"])
def test_a_deep_keyset_cursor_is_an_index_range_scan(client, fleet, ordering):
    sort = pages.parse_sort(ordering)
    cursor = _deep_cursor(sort, 21_000)
    queries = _list_queries(
        client, f"/api/v1/interfaces/?ordering={ordering}&cursor={cursor}", fleet["token"]
    )
    chosen = _page_query(queries)
    assert "OFFSET" not in chosen
    _assert_page_plan(chosen)
    (scan,) = _interface_scans(_plan(chosen))
    # The cursor's row comparison is the index condition: the scan starts at the cursor.
    assert "Index Cond" in scan, scan


def test_filtered_deep_pages_use_the_index_too(client, fleet):
    for url in (
        "/api/v1/interfaces/?state=free&offset=15000",
        "/api/v1/interfaces/?driver=ice&ordering=-node__name&offset=15000",
        "/api/v1/interfaces/?node=plan-01000",
        "/api/v1/interfaces/?present=false",
    ):
        _assert_page_plan(_page_query(_list_queries(client, url, fleet["token"])))


def test_absent_nics_and_exact_macs_have_their_own_small_indexes(client, fleet):
    """`present` is indexed for absent NICs only (a present NIC costs that index nothing on
    insert), MACs by one plain index (no LIKE index)."""
    chosen = _page_query(_list_queries(client, "/api/v1/interfaces/?present=false", fleet["token"]))
    names = {n.get("Index Name") for n in _interface_scans(_plan(chosen))}
    assert names == {"iface_absent"}, _plan(chosen)
    sql, params = (
        Interface.objects.filter(mac="02:00:03:e8:00:05").values("id").query.sql_with_params()
    )
    with connection.cursor() as cursor:
        plan = _plan(cursor.mogrify(sql, params))
    assert {n.get("Index Name") for n in _interface_scans(plan)} == {"iface_mac"}, plan
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'inventory_interface'"
            " AND indexdef LIKE '%%pattern_ops%%'"
        )
        assert cursor.fetchall() == []


def test_released_reservations_never_enter_the_list(client, fleet):
    queries = _list_queries(client, f"/api/v1/interfaces/?team={fleet['team']}", fleet["token"])
    chosen = _page_query(queries)
    # The team filter joins the active reservations only (the partial index), then the page.
    assert '"inventory_reservation"."released_at" IS NULL' in chosen
    plan = _plan(chosen)
    reservation_scans = [
        n for n in _nodes(plan) if n.get("Relation Name") == "inventory_reservation"
    ]
    assert reservation_scans and all(
        n["Node Type"] != "Seq Scan" and n.get("Index Name") != "reservation_active"
        for n in reservation_scans
    ), plan
    response = client.get(
        f"/api/v1/interfaces/?team={fleet['team']}", HTTP_AUTHORIZATION=f"Token {fleet['token']}"
    )
    assert response.json()["count"] == 5
