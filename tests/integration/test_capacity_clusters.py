"""A reservation request asks one cluster: the one it names (`cluster`), else the default one.
Two clusters share a node name (`node-a`) here: a request for `second` is matched, counted,
told the closest NICs, granted and handed NADs among `second`'s NICs only; one that names no
cluster among the default cluster's only; a cluster nobody registered is a 400 naming `cluster`
and the known ones."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from inventory.models import Cluster, Interface, Reservation, ReservationRequest
from tests.api.builders import in_days, make_free_interface, make_node, make_people, token_for

pytestmark = pytest.mark.django_db

URL = "/api/v1/reservation-requests/"
CNI = {"host_device": {"path": "/opt/cni/bin/host-device", "version": "1.1.1",
                       "supported_versions": ["0.3.1", "0.4.0", "1.0.0"]}}  # fmt: skip
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def world(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")  # annotation publishing just logs
    settings.MULTUS_VERSION = ""
    settings.CLUSTER_NAME = "default"
    people = make_people()
    default = Cluster.objects.create(name="default")
    second = Cluster.objects.create(name="second")
    ours = make_node("node-a", cluster=default, cni=CNI)
    make_free_interface(ours, "ens1f0", speed_mbps=25000)
    theirs_a = make_node("node-a", cluster=second, cni=CNI)
    theirs_b = make_node("node-b", cluster=second, cni=CNI)
    make_free_interface(theirs_a, "ens2f0", speed_mbps=100000, mac="02:00:00:00:0b:01")
    make_free_interface(theirs_b, "eth1", speed_mbps=10000, mac="02:00:00:00:0b:02")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token_for(people.owner)}")
    return {"api": api, "people": people, "second": second}


def body(**fields) -> dict:
    return {"purpose": "load test", "expires_at": in_days(2).isoformat(), **fields}


def nic_clusters(data: dict) -> set[str]:
    ids = [n["interface"] for n in data["nics"]]
    return set(
        Reservation.objects.filter(interface_id__in=ids).values_list(
            "interface__node__cluster__name", flat=True
        )
    )


def test_a_request_for_the_second_cluster_gets_its_nics_only(world):
    api = world["api"]
    # node-a exists in both clusters: the one of the cluster asked is the one granted.
    answer = api.post(URL, body(count=1, nodes=["node-a"], cluster="second"), format="json")
    assert answer.status_code == 201, answer.content
    data = answer.json()
    assert [(n["node"], n["interface_name"]) for n in data["nics"]] == [("node-a", "ens2f0")]
    assert nic_clusters(data) == {"second"}
    assert data["cluster"] == "second"
    assert data["constraints"]["cluster"] == "second"
    # The NAD handed back is rendered for the second cluster's NIC.
    assert not [f for f in data["nad_findings"] if f["severity"] == "error"], data["nad_findings"]
    assert [n["nodes"] for n in data["nads"]] == [["node-a"]]
    rendered = ReservationRequest.objects.get(pk=data["id"])
    assert rendered.constraints["cluster"] == "second"
    # The rest of the second cluster: one NIC left there, though the default has a free one.
    answer = api.post(URL, body(count=2, cluster="second"), format="json")
    assert answer.status_code == 409, answer.content
    assert Reservation.objects.filter(released_at__isnull=True).count() == 1


def test_a_request_naming_no_cluster_gets_the_default_clusters_nics_only(world):
    api = world["api"]
    # Three free NICs in all, one in the default cluster: two cannot be met there.
    answer = api.post(URL, body(count=2), format="json")
    assert answer.status_code == 409, answer.content
    data = answer.json()
    assert data["cluster"] == "default" and "cluster" not in data["constraints"]
    assert data["steps"][0]["before"] == 1, data["steps"]
    assert {near["nic"] for near in data["closest"]} <= {"node-a/ens1f0"}
    answer = api.post(URL, body(count=1), format="json")
    assert answer.status_code == 201, answer.content
    data = answer.json()
    assert [(n["node"], n["interface_name"]) for n in data["nics"]] == [("node-a", "ens1f0")]
    assert nic_clusters(data) == {"default"}


def test_the_preview_counts_and_explains_within_the_cluster_asked(world):
    api = world["api"]
    second = api.post(f"{URL}preview/", {"count": 3, "cluster": "second"}, format="json").json()
    assert second["ok"] is False and second["matching"] == 2
    assert second["steps"][0]["before"] == 2, second["steps"]
    assert {near["nic"] for near in second["closest"]} <= {"node-a/ens2f0", "node-b/eth1"}
    fast = api.post(
        f"{URL}preview/", {"count": 1, "min_speed_mbps": 40000, "cluster": "second"}, format="json"
    ).json()
    assert fast["ok"] and [p["id"] for p in fast["picked"]] == [
        Interface.objects.get(name="ens2f0").pk
    ]
    default = api.post(f"{URL}preview/", {"count": 1, "min_speed_mbps": 40000}, format="json")
    data = default.json()
    assert data["ok"] is False and data["matching"] == 0
    assert data["explanation"].startswith("speed ≥ 40000 Mb/s left 0 of 1"), data["explanation"]
    assert {near["nic"] for near in data["closest"]} == {"node-a/ens1f0"}
    assert not Reservation.objects.exists()


@pytest.mark.parametrize(
    ("path", "fields"), [("", body(count=1)), ("preview/", {"count": 1})], ids=["create", "preview"]
)
def test_an_unknown_cluster_is_a_400_naming_the_field_and_the_known_ones(world, path, fields):
    answer = world["api"].post(f"{URL}{path}", {**fields, "cluster": "thrid"}, format="json")
    assert answer.status_code == 400, answer.content
    message = " ".join(answer.json()["cluster"])
    assert "'thrid'" in message and "default, second" in message
    assert not ReservationRequest.objects.exists()
    assert not Reservation.objects.exists()


def test_the_list_filters_by_the_cluster_asked(world):
    api = world["api"]
    theirs = api.post(URL, body(count=1, cluster="second"), format="json").json()["id"]
    ours = api.post(URL, body(count=1), format="json").json()["id"]
    named = api.post(URL, body(count=1, cluster="default", driver="ice"), format="json").json()
    assert [r["id"] for r in api.get(URL, {"cluster": "second"}).json()["results"]] == [theirs]
    listed = api.get(URL, {"cluster": "default"}).json()["results"]
    assert [r["id"] for r in listed] == [named["id"], ours]
    assert api.get(URL, {"cluster": "nowhere"}).json()["results"] == []


def test_the_form_offers_the_clusters_and_its_count_follows_the_choice(client, world):
    client.force_login(world["people"].owner)
    page = client.get("/requests/new/").content.decode()
    assert 'name="cluster"' in page and '<option value="second">second</option>' in page
    form = {"count": "3", "placement": "any", "cluster": "second"}
    text = client.post("/requests/preview/", form, **HTMX).content.decode()
    assert "<strong>2</strong> match" in text
    form["cluster"] = ""
    text = client.post("/requests/preview/", form, **HTMX).content.decode()
    assert "<strong>1</strong> match" in text
    made = client.post(
        "/requests/new/",
        {"count": "1", "placement": "any", "cluster": "second", "purpose": "perf",
         "expires_at": in_days(2).strftime("%Y-%m-%dT%H:%M"), "namespace": "default"},
    )  # fmt: skip
    assert made.status_code == 302, made.content
    request = ReservationRequest.objects.get()
    assert request.constraints["cluster"] == "second"
    page = client.get(made["Location"]).content.decode()
    assert 'data-testid="request-cluster">second<' in page


def test_with_one_cluster_the_form_shows_no_cluster_chooser(client, settings):
    settings.CLUSTER_NAME = "default"
    make_free_interface(make_node("node-a", cluster=Cluster.objects.create(name="default")))
    client.force_login(make_people().owner)
    page = client.get("/requests/new/")
    assert page.status_code == 200
    assert 'name="cluster"' not in page.content.decode()


def test_the_requests_page_shows_each_requests_cluster(client, world):
    api = world["api"]
    api.post(URL, body(count=1, cluster="second"), format="json")
    api.post(URL, body(count=1), format="json")
    client.force_login(world["people"].owner)
    page = client.get("/requests/").content.decode()
    assert "<th>Cluster</th>" in page
    cells = page.split('data-testid="request-cluster">')[1:]
    assert [cell.split("<", 1)[0] for cell in cells] == ["default", "second"]  # newest first


def test_with_one_cluster_the_requests_page_has_no_cluster_column(client, settings):
    settings.CLUSTER_NAME = "default"
    Cluster.objects.create(name="default")
    client.force_login(make_people().owner)
    page = client.get("/requests/").content.decode()
    assert "<th>Cluster</th>" not in page and 'colspan="7"' in page
