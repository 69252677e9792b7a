"""The reservation request pages: the form, its live count (an htmx fragment), the result page
with the NICs, NADs and pod placement, a refused request's explanation, and the list."""

from __future__ import annotations

import pytest

from inventory.models import Reservation, ReservationRequest
from tests.api.builders import in_days, make_free_interface, make_node, make_people

pytestmark = pytest.mark.django_db

CNI = {"host_device": {"path": "/opt/cni/bin/host-device", "version": "1.1.1",
                       "supported_versions": ["0.3.1", "0.4.0", "1.0.0"]}}  # fmt: skip
HTMX = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def world(client, settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")
    settings.MULTUS_VERSION = ""
    people = make_people()
    a = make_node("node-a", labels={"rack": "r12"}, cni=CNI)
    b = make_node("node-b", labels={"rack": "r7"}, cni=CNI)
    make_free_interface(a, "ens1f0", speed_mbps=25000)
    make_free_interface(a, "ens1f1", speed_mbps=25000)
    make_free_interface(b, "eth1", speed_mbps=10000)
    client.force_login(people.owner)
    return people


def form(**fields) -> dict[str, str]:
    data = {
        "count": "1",
        "nodes": "",
        "label_selector": "",
        "min_speed_mbps": "",
        "driver": "",
        "vendor_id": "",
        "device_id": "",
        "sriov": "",
        "numa_node": "",
        "placement": "any",
        "spread_nodes": "",
        "purpose": "perf test",
        "expires_at": in_days(2).strftime("%Y-%m-%dT%H:%M"),
        "namespace": "default",
        "nad_name": "",
    }
    data.update(fields)
    return data


def test_the_form_page_and_the_list_render(client, world):
    response = client.get("/requests/new/")
    assert response.status_code == 200
    assert 'hx-post="/requests/preview/"' in response.content.decode()
    assert client.get("/requests/").status_code == 200


def test_the_live_count_says_how_many_match_and_why_not(client, world):
    response = client.post("/requests/preview/", form(min_speed_mbps="25000"), **HTMX)
    text = response.content.decode()
    assert response.status_code == 200
    assert "<strong>2</strong> match" in text
    assert "<html" not in text  # the fragment only
    response = client.post(
        "/requests/preview/", form(label_selector="rack=r7", min_speed_mbps="25000"), **HTMX
    )
    text = response.content.decode()
    assert "<strong>0</strong> match" in text
    assert "speed ≥ 25000 Mb/s left 0 of 1; closest: node-b/eth1 (speed 10000 Mb/s)" in text
    response = client.post("/requests/preview/", form(label_selector="rack in (r1"), **HTMX)
    assert "Node labels: Not a label selector: a &#x27;(&#x27; is not closed" in (
        response.content.decode()
    )


def test_a_granted_request_goes_to_its_page_with_nics_nad_and_placement(client, world):
    response = client.post("/requests/new/", form(count="2", placement="one_node", nad_name="fast"))
    assert response.status_code == 302
    request = ReservationRequest.objects.get()
    assert response["Location"] == f"/requests/{request.pk}/"
    text = client.get(response["Location"]).content.decode()
    assert "granted" in text
    assert "ens1f0" in text and "ens1f1" in text
    assert "name: fast-1" in text and "name: fast-2" in text
    assert "kubernetes.io/hostname: node-a" in text
    assert Reservation.objects.filter(team=world.team).count() == 2


def test_a_refused_request_shows_the_constraint_that_emptied_the_set(client, world):
    response = client.post("/requests/new/", form(count="1", driver="ice"), follow=True)
    text = response.content.decode()
    assert "refused" in text
    assert "driver ice left 0 of 3" in text
    assert not Reservation.objects.exists()
    assert "driver ice left 0 of 3" in client.get("/requests/").content.decode()


def test_a_bad_constraint_is_shown_next_to_its_field(client, world):
    response = client.post("/requests/new/", form(vendor_id="intel"))
    assert response.status_code == 200
    assert "four hex digits" in response.content.decode()
    assert not ReservationRequest.objects.exists()


def test_a_missing_request_is_a_404(client, world):
    assert client.get("/requests/999999/").status_code == 404
