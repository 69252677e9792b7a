"""Twenty people reserve the same NIC at the same moment through the API: exactly one wins.

PostgreSQL only: that is where requests really run in parallel (row lock + partial unique index);
SQLite serializes every writer, which would prove nothing. CI runs PostgreSQL.
"""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections
from rest_framework.test import APIClient

from inventory.models import HistoryEntry, Reservation
from tests.api.builders import (
    in_days,
    make_free_interface,
    make_node,
    make_team,
    make_user,
    token_for,
)

CONTENDERS = 20

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL); SQLite serializes writers")


def test_twenty_concurrent_reserves_give_one_201_and_nineteen_409s(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")  # annotation publishing just logs
    nic = make_free_interface(make_node("node-race"), "ens9f0")
    contenders = []
    for number in range(CONTENDERS):
        team = make_team(f"team-{number:02d}")
        contenders.append((team.name, token_for(make_user(f"user-{number:02d}", team))))
    barrier = threading.Barrier(CONTENDERS)
    answers: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def contend(team_name: str, token: str) -> None:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
        body = {
            "interface": nic.pk,
            "team": team_name,
            "purpose": "race",
            "expires_at": in_days(1).isoformat(),
        }
        try:
            barrier.wait(timeout=30)
            response = client.post("/api/v1/reservations/", body, format="json")
            with lock:
                answers.append((response.status_code, response.json()))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=contend, args=c) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    statuses = sorted(status for status, _ in answers)
    assert statuses == [201] + [409] * (CONTENDERS - 1), answers
    winner = next(body for status, body in answers if status == 201)
    for status, body in answers:
        if status == 409:
            assert body["holder"] == winner["team"]
            assert f"team {winner['team']}" in body["detail"]
    assert Reservation.objects.filter(interface=nic, released_at__isnull=True).count() == 1
    assert HistoryEntry.objects.filter(kind="reserve", interface=nic).count() == 1
