"""Fifty reservation requests for overlapping capacity at the same moment, through the API:
no NIC is reserved twice, every request gets all it asked for or nothing, and together they are
granted exactly the NICs that were free.

The fleet: 10 nodes with 4 free NICs each (40), the first 5 nodes 25G, the other 5 10G. The
requests ask for any two NICs (20 of them), two 25G NICs on one node (10) or two NICs on two
nodes (20), so their picks overlap by one NIC or by two. Every request asks for two and the free
NICs are an even number, and the "any two" requests alone ask for all 40: whatever the
interleaving, either they get all 40, or one of them is refused, having seen fewer than two free
NICs, and nothing frees a NIC: at the end none is left.

PostgreSQL only: that is where requests really run in parallel (row locks + the partial unique
index); SQLite serializes every writer, which would prove nothing. CI runs PostgreSQL.
"""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from inventory.choices import HistoryKind, OwnershipState
from inventory.models import HistoryEntry, Interface, Reservation, ReservationRequest
from tests.api.builders import (
    in_days,
    make_free_interface,
    make_node,
    make_team,
    make_user,
    token_for,
)

CONTENDERS = 50
# Two in five any two NICs (20 requests: alone they ask for all 40), the rest two 25G NICs on one
# node or two NICs on two nodes: their picks overlap the others' by one NIC or by two.
ASKS = (
    {"count": 2},
    {"count": 2, "min_speed_mbps": 25000, "placement": "one_node"},
    {"count": 2, "placement": "spread", "spread_nodes": 2},
    {"count": 2},
    {"count": 2, "placement": "spread", "spread_nodes": 2},
)
NODES = 10
NICS_PER_NODE = 4

pytestmark = [pytest.mark.postgres, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL); SQLite serializes writers")


def test_fifty_concurrent_requests_share_the_free_nics_all_or_nothing(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")  # annotation publishing just logs
    free = []
    for n in range(NODES):
        node = make_node(f"node-{n:02d}", labels={"tier": "fast" if n < 5 else "slow"})
        for i in range(NICS_PER_NODE):
            free.append(
                make_free_interface(node, f"ens{i}f0", speed_mbps=25000 if n < 5 else 10000).pk
            )
    # A NIC that is not free is never granted.
    make_free_interface(
        make_node("node-busy"), "ens9f0", speed_mbps=25000, state=OwnershipState.POD
    )
    contenders = []
    for number in range(CONTENDERS):
        team = make_team(f"team-{number:02d}")
        token = token_for(make_user(f"user-{number:02d}", team))
        ask = ASKS[number % len(ASKS)]
        contenders.append((team.name, token, ask))
    barrier = threading.Barrier(CONTENDERS)
    answers: list[tuple[dict, int, dict]] = []
    lock = threading.Lock()

    def contend(team_name: str, token: str, ask: dict) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        body = {
            **ask,
            "team": team_name,
            "purpose": "race",
            "expires_at": in_days(1).isoformat(),
        }
        try:
            barrier.wait(timeout=60)
            response = client.post("/api/v1/reservation-requests/", body, format="json")
            with lock:
                answers.append((ask, response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=contend, args=c) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)

    assert len(answers) == CONTENDERS
    statuses = Counter(status for _, status, _ in answers)
    assert set(statuses) <= {201, 409}, answers

    granted_nics: list[int] = []
    for ask, status, body in answers:
        if status == 201:
            # All it asked for, as it asked: two NICs, 25G on one node for the one_node kind.
            assert body["outcome"] == "granted"
            assert len(body["nics"]) == ask["count"]
            assert all(nic["active"] for nic in body["nics"])
            nodes = {nic["node"] for nic in body["nics"]}
            if ask.get("placement") == "one_node":
                assert len(nodes) == 1
                assert int(next(iter(nodes)).split("-")[1]) < 5
            if ask.get("placement") == "spread":
                assert len(nodes) == 2
            granted_nics += [nic["interface"] for nic in body["nics"]]
        else:
            # Nothing: no reservation of this request, and the reason is said.
            assert body["outcome"] == "refused" and body["nics"] == []
            assert body["explanation"]

    # No NIC reserved twice: not in the answers, not in the table.
    assert len(granted_nics) == len(set(granted_nics))
    active = list(
        Reservation.objects.filter(released_at__isnull=True).values_list("interface_id", flat=True)
    )
    assert len(active) == len(set(active))
    assert sorted(active) == sorted(granted_nics)
    # Every request has all or none of its reservations, as recorded.
    for request in ReservationRequest.objects.all():
        assert request.reservations.count() in (0, request.count)
        assert (request.reservations.count() == request.count) == (request.outcome == "granted")
    # The sum of granted NICs is what was free: all 40, and nothing else.
    assert sorted(granted_nics) == sorted(free)
    assert statuses[201] == len(free) // 2 and statuses[409] == CONTENDERS - len(free) // 2
    assert set(Interface.objects.filter(pk__in=free).values_list("state", flat=True)) == {
        OwnershipState.RESERVED
    }
    assert HistoryEntry.objects.filter(kind=HistoryKind.RESERVE).count() == len(free)
    assert HistoryEntry.objects.filter(kind=HistoryKind.REQUEST).count() == CONTENDERS
