"""CSV through the API: `GET /api/v1/interfaces/export/` with a token gives the fleet page's
export columns for every row matching the filters."""

from __future__ import annotations

import csv
import io

import pytest

from inventory.read.exports import CSV_COLUMNS
from inventory.services import reservations
from tests.api.builders import in_days, make_free_interface, make_node

pytestmark = pytest.mark.django_db


def read_csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == CSV_COLUMNS
    return [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]


def test_a_token_gets_every_matching_row_as_csv(client_for, people, nic):
    node_b = make_node("node-b")
    make_free_interface(node_b, "eth0", state="system", reason="default route")
    make_free_interface(node_b, "=HYPERLINK(1)", alias="@evil")
    reservations.reserve(
        interface_id=nic.pk,
        team=people.team,
        user=people.owner,
        purpose="tests",
        expires_at=in_days(1),
    )
    client = client_for(people.owner)

    everything = read_csv(client.get("/api/v1/interfaces/export/"))
    assert [(r["node"], r["interface"]) for r in everything] == [
        ("node-a", "ens1f0"),
        ("node-b", "'=HYPERLINK(1)"),  # a spreadsheet formula stays text
        ("node-b", "eth0"),
    ]
    assert everything[0]["team"] == "netlab" and everything[0]["state"] == "reserved"
    assert everything[1]["alias"] == "'@evil"

    # The same filters as the list and the fleet page; not paginated.
    free_b = read_csv(client.get("/api/v1/interfaces/export/?node=node-b&state=free&limit=1"))
    assert [r["interface"] for r in free_b] == ["'=HYPERLINK(1)"]


def test_a_bad_filter_is_a_400_naming_it(client_for, people):
    response = client_for(people.owner).get("/api/v1/interfaces/export/?speed_min=fast")
    assert response.status_code == 400
    assert response.json() == {"speed_min": ["A number is required."]}


def test_anonymous_gets_no_csv(client_for):
    assert client_for(None).get("/api/v1/interfaces/export/").status_code == 401


def test_asking_for_csv_gets_csv_and_errors_stay_json(client_for, people, nic):
    client = client_for(people.owner)
    rows = read_csv(client.get("/api/v1/interfaces/export/", HTTP_ACCEPT="text/csv"))
    assert [r["interface"] for r in rows] == ["ens1f0"]
    response = client.get("/api/v1/interfaces/export/?speed_min=fast", HTTP_ACCEPT="text/csv")
    assert response.status_code == 400
    assert response.json() == {"speed_min": ["A number is required."]}
