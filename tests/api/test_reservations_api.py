"""/api/v1/reservations/: create = reserve, DELETE = release, POST {id}/extend/; the owner, a
team-mate, an outsider, staff and anonymous."""

from __future__ import annotations

import pytest
from django.utils import timezone

from inventory.models import HistoryEntry, Reservation
from tests.api.builders import in_days

pytestmark = pytest.mark.django_db

URL = "/api/v1/reservations/"


def body(nic, **fields):
    return {
        "interface": nic.pk,
        "purpose": "latency tests",
        "expires_at": in_days(1).isoformat(),
        **fields,
    }


@pytest.fixture
def reservation(people, nic, client_for):
    response = client_for(people.owner).post(URL, body(nic), format="json")
    assert response.status_code == 201, response.content
    return Reservation.objects.get(pk=response.json()["id"])


def test_the_owner_reserves_for_their_only_team(people, nic, client_for):
    response = client_for(people.owner).post(URL, body(nic), format="json")

    assert response.status_code == 201, response.content
    data = response.json()
    assert (data["team"], data["created_by"], data["node"], data["interface_name"]) == (
        "netlab",
        "olivia",
        "node-a",
        "ens1f0",
    )
    assert data["active"] is True
    interface = client_for(people.outsider).get(f"/api/v1/interfaces/{nic.pk}/").json()
    assert (interface["state"], interface["reserved_team"]) == ("reserved", "netlab")
    assert interface["reservation"] == data["id"]


def test_anonymous_gets_401_with_a_token_challenge(nic):
    from rest_framework.test import APIClient

    client = APIClient()
    for response in (client.get(URL), client.post(URL, body(nic), format="json")):
        assert response.status_code == 401
        assert response["WWW-Authenticate"].startswith("Token")
    assert not Reservation.objects.exists()


def test_an_outsider_cannot_reserve_for_another_team(people, nic, client_for):
    response = client_for(people.outsider).post(URL, body(nic, team="netlab"), format="json")
    assert response.status_code == 403
    assert "netlab" in response.json()["detail"]
    assert not Reservation.objects.exists()


def test_an_unknown_team_is_403_like_a_team_one_is_not_in(people, nic, client_for):
    response = client_for(people.owner).post(URL, body(nic, team="nope"), format="json")
    assert response.status_code == 403 and "nope" in response.json()["detail"]


def test_staff_reserve_for_a_named_team_and_must_name_one(people, nic, client_for):
    staff = client_for(people.staff)
    missing = staff.post(URL, body(nic), format="json")
    assert missing.status_code == 400 and "team" in missing.json()
    response = staff.post(URL, body(nic, team="storage"), format="json")
    assert response.status_code == 201 and response.json()["team"] == "storage"


@pytest.mark.parametrize(
    ("fields", "bad_field"),
    [
        ({"expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"expires_at": "tomorrow"}, "expires_at"),
        ({"interface": 987654}, "interface"),
        ({"interface": "eth0"}, "interface"),
        ({"purpose": ""}, "purpose"),
    ],
)
def test_it_answers_400_naming_the_bad_field(people, nic, client_for, fields, bad_field):
    response = client_for(people.owner).post(URL, body(nic, **fields), format="json")
    assert response.status_code == 400, response.content
    assert bad_field in response.json()


def test_a_second_reservation_gets_409_naming_the_holder(people, nic, client_for, reservation):
    response = client_for(people.outsider).post(URL, body(nic, team="storage"), format="json")
    assert response.status_code == 409
    assert response.json()["holder"] == "netlab"
    assert "netlab" in response.json()["detail"]


def test_a_nic_that_is_not_free_gets_409(people, nic, client_for):
    nic.state, nic.reason = "cni", "cali* veth of Calico"
    nic.save(update_fields=["state", "reason"])
    response = client_for(people.owner).post(URL, body(nic), format="json")
    assert response.status_code == 409 and "Calico" in response.json()["detail"]


def test_the_list_shows_active_reservations_unless_asked(people, nic, client_for, reservation):
    client = client_for(people.mate)
    client.delete(f"{URL}{reservation.pk}/")
    second = client.post(URL, body(nic, purpose="again"), format="json").json()

    def ids(query=""):
        return [r["id"] for r in client.get(URL + query).json()["results"]]

    assert ids() == [second["id"]]
    assert ids("?active=false") == [reservation.pk]
    assert sorted(ids("?active=all")) == sorted([reservation.pk, second["id"]])
    assert ids("?team=storage") == []
    assert ids("?node=node-a&team=netlab") == [second["id"]]


def test_a_team_mate_extends_and_an_outsider_cannot(people, reservation, client_for):
    later = in_days(7)
    url = f"{URL}{reservation.pk}/extend/"
    denied = client_for(people.outsider).post(url, {"expires_at": later.isoformat()}, format="json")
    assert denied.status_code == 403
    anonymous = client_for(None).post(url, {"expires_at": later.isoformat()}, format="json")
    assert anonymous.status_code == 401

    response = client_for(people.mate).post(url, {"expires_at": later.isoformat()}, format="json")
    assert response.status_code == 200, response.content
    reservation.refresh_from_db()
    assert reservation.expires_at == later

    earlier = client_for(people.owner).post(
        url, {"expires_at": in_days(2).isoformat()}, format="json"
    )
    assert earlier.status_code == 400 and "expires_at" in earlier.json()


def test_delete_releases_for_team_members_only(people, nic, reservation, client_for):
    url = f"{URL}{reservation.pk}/"
    assert client_for(people.outsider).delete(url).status_code == 403
    assert client_for(None).delete(url).status_code == 401

    response = client_for(people.mate).delete(url + "?reason=tests+finished")
    assert response.status_code == 200
    assert response.json()["active"] is False
    assert response.json()["release_reason"] == "tests finished"
    assert HistoryEntry.objects.filter(kind="release", actor=people.mate).exists()
    nic.refresh_from_db()
    assert nic.state == "free"

    again = client_for(people.owner).delete(url)
    assert again.status_code == 409 and "already released" in again.json()["detail"]
    # A released reservation stays readable by id, for the record.
    assert client_for(people.outsider).get(url).json()["active"] is False


def test_staff_release_any_reservation(people, reservation, client_for):
    response = client_for(people.staff).delete(f"{URL}{reservation.pk}/")
    assert response.status_code == 200 and response.json()["released_by"] == "sam"


def test_unknown_reservation_is_404(people, client_for):
    client = client_for(people.owner)
    assert client.get(f"{URL}424242/").status_code == 404
    assert client.delete(f"{URL}424242/").status_code == 404
    extend = client.post(f"{URL}424242/extend/", {"expires_at": in_days(1).isoformat()})
    assert extend.status_code == 404


def test_put_and_patch_are_not_allowed(people, reservation, client_for):
    client = client_for(people.owner)
    url = f"{URL}{reservation.pk}/"
    assert client.put(url, {"purpose": "x"}, format="json").status_code == 405
    assert client.patch(url, {"purpose": "x"}, format="json").status_code == 405


def test_the_reservation_times_are_iso_8601(people, reservation, client_for):
    data = client_for(people.owner).get(f"{URL}{reservation.pk}/").json()
    assert timezone.datetime.fromisoformat(data["expires_at"]) == reservation.expires_at
