"""`/api/v1/reservation-requests/`: create (201 granted, 409 refused with the explanation),
preview, list and detail; a bad constraint is a 400 naming the field and the rule."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from rest_framework.test import APIClient

from inventory.models import Reservation, ReservationRequest
from tests.api.builders import (
    in_days,
    make_free_interface,
    make_node,
    make_people,
    token_for,
)

pytestmark = pytest.mark.django_db

URL = "/api/v1/reservation-requests/"


@pytest.fixture
def api(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")  # annotation publishing just logs
    people = make_people()
    a = make_node("node-a", labels={"rack": "r12"})
    b = make_node("node-b", labels={"rack": "r7"})
    make_free_interface(a, "ens1f0", speed_mbps=25000, vendor_id="0x15b3", sriov_total_vfs=8)
    make_free_interface(a, "ens1f1", speed_mbps=25000, vendor_id="0x15b3", sriov_total_vfs=8)
    make_free_interface(b, "eth1", speed_mbps=10000, vendor_id="0x8086")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(people.owner)}")
    return client


def body(**fields) -> dict:
    return {"purpose": "load test", "expires_at": in_days(2).isoformat(), **fields}


def test_a_granted_request_answers_201_with_the_nics_nads_and_placement(api):
    response = api.post(
        URL,
        body(count=2, min_speed_mbps=25000, placement="one_node", namespace="perf", nad_name="up"),
        format="json",
    )
    assert response.status_code == 201, response.json()
    data = response.json()
    assert data["outcome"] == "granted" and data["team"] == "netlab"
    assert sorted(n["interface_name"] for n in data["nics"]) == ["ens1f0", "ens1f1"]
    assert {n["node"] for n in data["nics"]} == {"node-a"}
    assert [n["name"] for n in data["nads"]] == ["up-1", "up-2"]
    assert "kubernetes.io/hostname: node-a" in data["pod_snippet"]
    assert data["constraints"] == {"count": 2, "min_speed_mbps": 25000, "placement": "one_node"}
    assert Reservation.objects.filter(released_at__isnull=True).count() == 2
    detail = api.get(f"{URL}{data['id']}/").json()
    assert detail["nics"] == data["nics"]


def test_a_refused_request_answers_409_naming_the_constraint_that_emptied_the_set(api):
    response = api.post(URL, body(count=1, label_selector="rack=r7", sriov=True), format="json")
    assert response.status_code == 409
    data = response.json()
    assert data["outcome"] == "refused"
    assert data["explanation"].startswith(
        "SR-IOV capable left 0 of 1; closest: node-b/eth1 (not SR-IOV capable)"
    )
    assert data["steps"][-1]["field"] == "sriov"
    assert data["closest"][0]["nic"] == "node-b/eth1"
    assert not Reservation.objects.exists()
    assert ReservationRequest.objects.get().outcome == "refused"
    listed = api.get(URL, {"outcome": "refused"}).json()
    assert [r["id"] for r in listed["results"]] == [data["id"]]
    assert api.get(URL, {"outcome": "granted"}).json()["results"] == []


def test_preview_counts_and_changes_nothing(api):
    response = api.post(f"{URL}preview/", {"count": 1, "vendor_id": "15b3"}, format="json")
    assert response.status_code == 200
    data = response.json()
    assert data["ok"] is True and data["matching"] == 2
    assert data["picked"] == [{"id": data["picked"][0]["id"], "nic": "node-a/ens1f0"}]
    assert [s["after"] for s in data["steps"]] == [2, 2, 1]
    response = api.post(f"{URL}preview/", {"count": 3, "vendor_id": "0x15b3"}, format="json")
    assert response.json()["explanation"] == "3 asked, 2 match"
    assert not Reservation.objects.exists() and not ReservationRequest.objects.exists()


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"count": 0}, "count", "greater than or equal to 1"),
        ({"count": "2"}, "count", "A valid integer is required"),
        ({"count": 1, "label_selector": "rack in (r1"}, "label_selector", "'(' is not closed"),
        ({"count": 1, "label_selector": "rack=r 1"}, "label_selector", "a label selector is"),
        ({"count": 1, "vendor_id": "intel"}, "vendor_id", "four hex digits"),
        ({"count": 1, "placement": "rack"}, "placement", "not a valid choice"),
        ({"count": 1, "placement": "spread"}, "spread_nodes", "over how many nodes"),
        ({"count": 2, "placement": "spread", "spread_nodes": 3}, "spread_nodes", "1 to the count"),
        ({"count": 1, "sriov": "yes"}, "sriov", "Must be a valid boolean"),
        ({"count": 1, "min_speed_mbps": 0}, "min_speed_mbps", "greater than or equal to 1"),
        ({"count": 1, "minSpeed": 1}, "minSpeed", "Unknown field"),
    ],
)
def test_bad_constraints_are_a_400_naming_field_and_rule(api, fields, field, words):
    for url, payload in ((f"{URL}preview/", fields), (URL, body(**fields))):
        response = api.post(url, payload, format="json")
        assert response.status_code == 400, (url, response.json())
        errors = response.json()
        assert field in errors, errors
        assert words in " ".join(errors[field]), errors
    assert not ReservationRequest.objects.exists()


def test_request_fields_are_checked_by_name(api):
    response = api.post(URL, body(count=1, namespace="Bad_NS"), format="json")
    assert response.status_code == 400
    assert "DNS-1123 label" in response.json()["namespace"][0]
    response = api.post(URL, body(count=1, expires_at=in_days(-1).isoformat()), format="json")
    assert response.status_code == 400
    assert "future" in response.json()["expires_at"][0]
    response = api.post(URL, body(count=1, purpose="   "), format="json")
    assert response.status_code == 400
    assert "purpose" in response.json()
    assert not ReservationRequest.objects.exists()


def test_acting_for_a_team_you_are_not_in_is_403(api):
    response = api.post(URL, body(count=1, team="storage"), format="json")
    assert response.status_code == 403
    assert not Reservation.objects.exists()


def test_release_frees_every_nic_of_a_request_once(api):
    made = api.post(URL, body(count=2, min_speed_mbps=25000), format="json").json()
    response = api.post(f"{URL}{made['id']}/release/?reason=finished")
    assert response.status_code == 200, response.json()
    nics = response.json()["nics"]
    assert len(nics) == 2 and not any(n["active"] for n in nics)
    assert set(Reservation.objects.values_list("release_reason", flat=True)) == {"finished"}
    again = api.post(f"{URL}{made['id']}/release/")
    assert again.status_code == 409
    assert "Nothing to release" in again.json()["detail"]
    assert api.post(f"{URL}999999/release/").status_code == 404


def test_release_by_another_team_is_403_and_a_refused_request_409(api):
    made = api.post(URL, body(count=1), format="json").json()
    refused = api.post(URL, body(count=1, min_speed_mbps=10**6), format="json").json()
    outsider = APIClient()
    outsider.credentials(
        HTTP_AUTHORIZATION=f"Token {token_for(User.objects.get(username='oscar'))}"
    )
    response = outsider.post(f"{URL}{made['id']}/release/")
    assert response.status_code == 403
    assert "Only members of team netlab" in response.json()["detail"]
    assert Reservation.objects.filter(released_at__isnull=True).count() == 1
    response = api.post(f"{URL}{refused['id']}/release/")
    assert response.status_code == 409 and "was refused" in response.json()["detail"]


def test_one_numa_places_every_nic_on_one_numa_node_of_one_node(api):
    node = make_node("node-c")
    make_free_interface(node, "p0", speed_mbps=25000, numa_node=0)
    make_free_interface(node, "p1", speed_mbps=25000, numa_node=1)
    make_free_interface(node, "p2", speed_mbps=25000, numa_node=1)
    response = api.post(
        f"{URL}preview/", {"count": 2, "placement": "one_numa"}, format="json"
    ).json()
    assert response["ok"] and [n["nic"] for n in response["picked"]] == ["node-c/p1", "node-c/p2"]
    assert response["steps"][-1] == {
        "field": "placement", "text": "2 on one NUMA node", "before": 6, "after": 2
    }  # fmt: skip
    response = api.post(URL, body(count=3, placement="one_numa"), format="json")
    assert response.status_code == 409
    assert response.json()["explanation"] == (
        "3 on one NUMA node: 6 match but no NUMA node of one node has 3 "
        "(the most on one NUMA node: 2 on node-c NUMA node 1)"
    )
