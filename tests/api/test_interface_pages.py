"""Paging the interface list: keyset cursors (`cursor=`), the old limit/offset, and `ordering`.
Whatever the way through the list, a client sees every row exactly once, in the order it asked
for; a cursor or an ordering the list did not offer is a 400 naming the parameter."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.models import Interface, Node
from inventory.read import pages
from inventory.services import reservations
from inventory.sync.verdicts import refresh_ownership
from tests.api.builders import in_days, make_free_interface, make_node

pytestmark = pytest.mark.django_db

API = "/api/v1/interfaces/"


@pytest.fixture
def eleven(db):
    """Eleven NICs on three nodes, with speeds, drivers and times that tie and differ."""
    now = timezone.now()
    rows = []
    for node_name, names in (
        ("node-c", ["ens1f0", "ens1f1", "eth0"]),
        ("node-a", ["ens1f0", "ens2f0", "ens1f1", "eth0"]),
        ("node-b", ["ens1f0", "eth9", "ens3f0", "ens1f1"]),
    ):
        node = make_node(node_name)
        for number, name in enumerate(names):
            rows.append(
                make_free_interface(
                    node,
                    name,
                    speed_mbps=None if name == "eth0" else 10000 * (number % 2 + 1),
                    driver="ice" if number % 2 else "ixgbe",
                    state="system" if name.startswith("eth") else "free",
                    state_changed_at=now - timedelta(minutes=len(rows) % 4),
                )
            )
    return rows


def walk_with_cursor(client, query: str, limit: int = 3) -> tuple[list[int], list[dict]]:
    """Follow `next` links from the first cursor page; return the ids and every answer."""
    answers = []
    url = f"{API}?{query}&limit={limit}&cursor="
    while url:
        response = client.get(url)
        assert response.status_code == 200, response.content
        answers.append(response.json())
        url = answers[-1]["next"]
    return [row["id"] for answer in answers for row in answer["results"]], answers


def walk_with_offset(client, query: str, limit: int = 3) -> list[int]:
    ids, offset = [], 0
    while True:
        body = client.get(f"{API}?{query}&limit={limit}&offset={offset}").json()
        ids += [row["id"] for row in body["results"]]
        if not body["next"]:
            return ids
        offset += limit


def expected_order(ordering: str) -> list[int]:
    """The order a person expects, computed here from the rows in Python."""
    sort = pages.parse_sort(ordering)

    def key(interface: Interface) -> tuple:
        values = {
            "node_name": interface.node.name,
            pages.SPEED_SORT: -1 if interface.speed_mbps is None else interface.speed_mbps,
        }
        return tuple(values[c] if c in values else getattr(interface, c) for c in sort.columns)

    rows = sorted(Interface.objects.select_related("node"), key=key, reverse=sort.descending)
    return [row.pk for row in rows]


@pytest.mark.parametrize("ordering", pages.sort_choices())
def test_cursor_and_offset_walks_see_every_row_once_in_the_asked_order(
    people, eleven, client_for, ordering
):
    client = client_for(people.outsider)

    by_cursor, _ = walk_with_cursor(client, f"ordering={ordering}")
    by_offset = walk_with_offset(client, f"ordering={ordering}")

    assert by_cursor == by_offset == expected_order(ordering)
    assert len(set(by_cursor)) == len(eleven)


@pytest.mark.postgres
@pytest.mark.parametrize("ordering", pages.sort_choices())
def test_offset_walks_from_checkpoints_see_every_row_once(
    people, eleven, client_for, ordering, monkeypatch
):
    """With a checkpoint every 2 rows, each offset page past the first starts from one (the
    recursive hop query runs, then the cache serves it) and still shows the rows in order."""
    if not pages.checkpoints_apply():
        pytest.skip("checkpoints are PostgreSQL's")
    monkeypatch.setattr(pages, "STRIDE", 2)
    client = client_for(people.outsider)

    by_offset = walk_with_offset(client, f"ordering={ordering}", limit=3)
    deep = client.get(f"{API}?ordering={ordering}&limit=2&offset=9").json()

    assert by_offset == expected_order(ordering)
    assert [row["id"] for row in deep["results"]] == expected_order(ordering)[9:11]


def test_a_previous_link_leads_back_to_the_same_page(people, eleven, client_for):
    client = client_for(people.outsider)
    _, answers = walk_with_cursor(client, "ordering=-speed_mbps", limit=4)
    assert [len(a["results"]) for a in answers] == [4, 4, 3]
    assert answers[0]["previous"] is None and answers[-1]["next"] is None

    back = client.get(answers[2]["previous"]).json()
    assert back["results"] == answers[1]["results"]
    first = client.get(back["previous"]).json()
    assert first["results"] == answers[0]["results"] and first["previous"] is None
    assert client.get(first["next"]).json()["results"] == answers[1]["results"]


def test_a_cursor_page_filters_like_any_page_and_has_no_count(people, eleven, client_for):
    client = client_for(people.outsider)
    ids, answers = walk_with_cursor(client, "state=free&node=node-b", limit=2)
    assert "count" not in answers[0]
    names = Interface.objects.filter(pk__in=ids).values_list("name", flat=True)
    assert sorted(names) == ["ens1f0", "ens1f1", "ens3f0"]


def test_an_offset_page_keeps_its_count_and_rows(people, eleven, client_for):
    body = client_for(people.outsider).get(f"{API}?ordering=name&limit=4&offset=8").json()
    assert body["count"] == 11
    assert [(r["node"], r["name"]) for r in body["results"]] == [
        ("node-a", "eth0"),
        ("node-c", "eth0"),
        ("node-b", "eth9"),
    ]
    assert body["results"][0]["cluster"] and body["results"][0]["reserved_team"] is None


def encode(body: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor",
        "%%%",
        encode({"o": "node__name", "k": ["node-a", "eth0"]}),  # one key short
        encode({"o": "node__name", "k": ["node-a", "eth0", "1"]}),  # id as text
        encode({"o": "node__name", "k": ["node-a", "eth0", 2**70]}),
        encode({"o": "node__name", "k": ["node-a\x00", "eth0", 1]}),
        encode({"o": "node__name", "k": ["n" * 300, "eth0", 1]}),
        encode({"o": "node__name", "k": [None, "eth0", 1]}),
        encode({"o": "node__name", "k": ["node-a", "eth0", 1], "b": 7}),
        encode(["node-a", "eth0", 1]),
    ],
)
def test_a_cursor_the_list_did_not_hand_out_is_a_400_naming_cursor(
    people, eleven, client_for, cursor
):
    response = client_for(people.outsider).get(f"{API}?cursor={cursor}")
    assert response.status_code == 400
    assert list(response.json()) == ["cursor"]


def test_a_cursor_of_another_ordering_or_a_bad_time_is_refused(people, eleven, client_for):
    client = client_for(people.outsider)
    _, answers = walk_with_cursor(client, "ordering=state")
    next_link = answers[0]["next"]
    response = client.get(next_link.replace("ordering=state", "ordering=-state"))
    assert response.status_code == 400
    assert "ordering" in response.json()["cursor"][0]
    for bad_time in ("2026-13-45T00:00:00Z", "yesterday", "2026-01-01T00:00:00+23:00"):
        cursor = encode({"o": "state_changed_at", "k": [bad_time, 1]})
        response = client.get(f"{API}?ordering=state_changed_at&cursor={cursor}")
        # +23:00 is a valid offset (Python) that PostgreSQL refuses: it is taken in UTC.
        expected = 200 if bad_time.endswith("+23:00") else 400
        assert response.status_code == expected, (bad_time, response.content)


@pytest.mark.parametrize("ordering", ["nonsense", "node", "state,name", "-", "reason"])
def test_an_ordering_the_list_does_not_offer_is_a_400_listing_the_choices(
    people, eleven, client_for, ordering
):
    response = client_for(people.outsider).get(f"{API}?ordering={ordering}")
    assert response.status_code == 400
    (message,) = response.json()["ordering"]
    assert "node__name" in message and "-speed_mbps" in message


def test_unknown_speeds_sort_as_the_lowest(people, eleven, client_for):
    rows = client_for(people.outsider).get(f"{API}?ordering=-speed_mbps&limit=100").json()
    speeds = [row["speed_mbps"] for row in rows["results"]]
    assert speeds == sorted(speeds, key=lambda s: -1 if s is None else s, reverse=True)
    assert speeds[-2:] == [None, None] and speeds[-3] == 10000


def test_the_offset_count_follows_new_rows_and_verdict_changes(people, eleven, client_for):
    """The count is reused until the inventory moves: a new row or a new verdict is counted at
    once."""
    client = client_for(people.outsider)

    def counts() -> tuple[int, int]:
        answered = client.get(f"{API}?state=free&limit=1").json()["count"]
        return answered, Interface.objects.filter(state="free").count()

    assert counts() == (8, 8)
    make_free_interface(eleven[0].node, "ens9f9")
    assert counts() == (9, 9)
    # The stored verdicts as the rules have them (the fixture's are made up), counted afresh.
    refresh_ownership(node_ids=Node.objects.values_list("pk", flat=True))
    before, truth = counts()
    assert before == truth
    reservations.reserve(
        interface_id=eleven[3].pk,
        team=people.team,
        user=people.owner,
        purpose="p",
        expires_at=in_days(1),
    )
    assert counts() == (before - 1, before - 1)
    assert Interface.objects.get(pk=eleven[3].pk).state == "reserved"
