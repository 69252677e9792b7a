"""Offset pages that start at checkpoints (inventory/read/pages.py): whatever the sort, the
filter or the depth, the page is the one a plain OFFSET gives; the checkpoints are found once by
the hop query, extended only as deep as someone asked, and found afresh when the inventory
moves. A small STRIDE makes a few dozen rows cross many checkpoints."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.choices import IdentityKind, OwnershipState
from inventory.models import Cluster, Interface, Node
from inventory.read import pages

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

STRIDE = 4
NAMES = ["eth0", "ens1f0", "ens1f1", "ens2f0", "ens2f1", "cali0a", "lo"]


@pytest.fixture(autouse=True)
def small_stride(monkeypatch):
    if not pages.checkpoints_apply():
        pytest.skip("checkpoints are PostgreSQL's (set DATABASE_URL)")
    monkeypatch.setattr(pages, "STRIDE", STRIDE)


def _add(node_names: list[str]) -> None:
    cluster, _ = Cluster.objects.get_or_create(name="offsets")
    now = timezone.now()
    for number, node_name in enumerate(node_names):
        node = Node.objects.create(cluster=cluster, name=node_name, ready=True)
        Interface.objects.bulk_create(
            Interface(
                node=node,
                node_name=node.name,
                identity=f"{node_name}/{name}",
                identity_kind=IdentityKind.NAME,
                name=name,
                driver="ice" if port % 2 else "ixgbe",
                speed_mbps=None if port == 0 else 10_000 * (port % 3 + 1),
                state=OwnershipState.FREE if port > 1 else OwnershipState.SYSTEM,
                state_changed_at=now - timedelta(minutes=(number * 7 + port) % 5),
                last_seen_at=now,
            )
            for port, name in enumerate(NAMES)
        )


@pytest.fixture
def rows():
    _add([f"node-{number:02d}" for number in range(9)])  # 63 interfaces


def _plain(queryset, sort, offset: int, limit: int) -> list[int]:
    return list(pages.sorted_by(queryset, sort).values_list("id", flat=True)[offset:][:limit])


def _hops(captured: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in captured.captured_queries if "WITH RECURSIVE" in q["sql"]]


@pytest.mark.parametrize(
    "ordering", ["node__name", "-node__name", "-state", "speed_mbps", "-state_changed_at", "id"]
)
@pytest.mark.parametrize("filters", [{}, {"state": OwnershipState.FREE}, {"driver": "ice"}])
def test_every_offset_page_is_the_plain_offsets_page(rows, ordering, filters):
    sort = pages.parse_sort(ordering)
    queryset = Interface.objects.filter(**filters)
    version = pages.inventory_version()
    total = queryset.count()
    for offset in [*range(0, total + 6, 3), 1_000]:
        ids = pages.offset_page_ids(queryset, sort, offset=offset, limit=5, version=version)
        assert ids == _plain(queryset, sort, offset, 5), (ordering, filters, offset)
        page = pages.offset_page(queryset, sort, offset=offset, limit=5, version=version)
        assert page.ids == ids
        if page.next is not None:
            after = pages.keyset_page_ids(queryset, sort, cursor=page.next, limit=5)
            assert after.ids == _plain(queryset, sort, offset + 5, 5)


def test_checkpoints_are_found_once_and_only_as_deep_as_asked(rows):
    sort = pages.parse_sort("node__name")
    queryset = Interface.objects.all()
    version = pages.inventory_version()

    def page(offset: int) -> tuple[list[int], list[str]]:
        with CaptureQueriesContext(connection) as captured:
            ids = pages.offset_page_ids(queryset, sort, offset=offset, limit=3, version=version)
        assert ids == _plain(queryset, sort, offset, 3)
        return ids, _hops(captured)

    # Offset 21: five checkpoints (rows 4, 8, ... 20), found by one query of five hops.
    _, hops = page(21)
    assert len(hops) == 1 and '"hops"."n" < 5' in hops[0]
    assert not page(13)[1] and not page(21)[1]  # shallower or the same: from the cache
    # Deeper: the five known are kept and three more are hopped to, from the fifth on.
    _, hops = page(33)
    assert len(hops) == 1 and '"hops"."n" < 3' in hops[0]
    # Past the end: the hops run out (the listing is complete), and are not tried again.
    ids, hops = page(90)
    assert ids == [] and len(hops) == 1
    assert not page(90)[1] and not page(200)[1]


def test_the_page_follows_rows_that_move_the_inventory(rows):
    sort = pages.parse_sort("node__name")
    queryset = Interface.objects.all()
    before = pages.inventory_version()
    pages.offset_page_ids(queryset, sort, offset=30, limit=3, version=before)

    _add(["node-00a", "aaa"])  # 14 interfaces sorted in front of and among the old ones
    after = pages.inventory_version()

    assert after != before
    for offset in (5, 18, 30, 44, 70):
        ids = pages.offset_page_ids(queryset, sort, offset=offset, limit=3, version=after)
        assert ids == _plain(queryset, sort, offset, 3)


def test_a_filter_no_row_can_match_is_an_empty_page_at_any_depth(rows, client, django_user_model):
    """A value out of the column's range has no SQL (Django knows the answer is empty): the
    count is 0 and every page, deep or not, is empty (it was a 500)."""
    client.force_login(django_user_model.objects.create(username="deep-empty"))
    for offset in (0, 40, 5_000):
        response = client.get(
            f"/api/v1/interfaces/?speed_mbps=-9223372036854775807&offset={offset}"
        )
        assert response.status_code == 200, response.content[:300]
        assert response.json()["count"] == 0 and response.json()["results"] == []
