"""Acceptance: no value typed into an HTML form makes a page answer 5xx. NUL and control
characters are a form error shown next to the field (the page answers 200 with the form), never
a 500 from the database refusing them; numbers out of every integer range, lone surrogates (as
raw bytes) and long text are refused or taken, never a crash."""

from __future__ import annotations

import pytest

from inventory.models import Cluster, NetworkAttachment, Reservation
from tests.api.builders import in_days, make_free_interface, make_node, make_people

pytestmark = pytest.mark.django_db

HOSTILE_VALUES = {
    "NUL": "a\x00b",
    "bell": "a\x07b",
    "escape": "\x1b[31mred",
    "DEL": "a\x7fb",
    "2**64": str(2**64),
    "-2**63-1": str(-(2**63) - 1),
    "10**30": "9" * 30,
    "5,000 digits": "9" * 5_000,
    "superscript two": "\u00b2",
    "Arabic-Indic digits": "\u0661\u0662",
    "right-to-left override": "abc\u202edef",
    "long": "x" * 20_000,
    "deep JSON": "[" * 3_000 + "]" * 3_000,
    "empty": "",
}
CONTROL = {"NUL", "bell", "escape", "DEL"}


@pytest.fixture
def world(client, settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")
    people = make_people()
    node = make_node("node-a")
    nic = make_free_interface(node, "ens1f0")
    held = make_free_interface(node, "ens2f0")
    reservation = Reservation.objects.create(
        interface=held,
        team=people.team,
        created_by=people.owner,
        purpose="held",
        expires_at=in_days(2),
    )
    client.force_login(people.owner)
    return {"nic": nic, "reservation": reservation, "team": people.team}


def forms(world) -> list[tuple[str, dict[str, str]]]:
    """(URL, a valid POST) of every form of the dashboard."""
    nic, reservation = world["nic"], world["reservation"]
    builder = {
        "interfaces": str(nic.pk),
        "namespace": "default",
        "name": "fast-net",
        "selector": "auto",
        "pod_interface": "net1",
        "cni_version": "auto",
        "ipam_type": "static",
        "ipam_addresses": "192.0.2.10/24",
        "ipam_gateway": "192.0.2.1",
        "ipam_routes": "",
        "ipam_subnet": "",
        "ipam_range_start": "",
        "ipam_range_end": "",
        "ipam_range": "",
        "ipam_exclude": "",
    }
    request = {
        "count": "1",
        "nodes": "node-a",
        "label_selector": "rack in (r1, r2)",
        "min_speed_mbps": "1000",
        "driver": "ixgbe",
        "vendor_id": "0x8086",
        "device_id": "",
        "sriov": "",
        "numa_node": "",
        "placement": "spread",
        "spread_nodes": "1",
        "purpose": "load test",
        "expires_at": in_days(3).strftime("%Y-%m-%dT%H:%M"),
        "namespace": "default",
        "nad_name": "",
    }
    return [
        (
            f"/interfaces/{nic.pk}/reserve/",
            {"purpose": "DPDK tests", "expires_at": in_days(3).strftime("%Y-%m-%dT%H:%M")},
        ),
        (
            f"/reservations/{reservation.pk}/extend/",
            {"expires_at": in_days(5).strftime("%Y-%m-%dT%H:%M")},
        ),
        ("/team/switch/", {"team": str(world["team"].pk), "next": "/"}),
        ("/nads/preview/", builder),
        ("/nads/apply/", builder),
        ("/nads/lint/", {"manifest": "apiVersion: k8s.cni.cncf.io/v1\n"}),
        ("/requests/preview/", request),
        ("/requests/new/", request),
    ]


def test_no_value_in_any_form_field_makes_a_page_fail(client, world):
    tried = 0
    for url, valid in forms(world):
        for field in valid:
            for label, value in HOSTILE_VALUES.items():
                response = client.post(url, {**valid, field: value})
                tried += 1
                assert response.status_code < 500, (url, field, label, response.status_code)
    assert tried > 300


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/interfaces/{nic}/reserve/", "purpose"),
        ("/nads/preview/", "name"),
        ("/nads/preview/", "ipam_addresses"),
        ("/nads/lint/", "manifest"),
        ("/requests/new/", "purpose"),
        ("/requests/new/", "label_selector"),
    ],
)
@pytest.mark.parametrize("label", sorted(CONTROL))
def test_a_control_character_in_a_text_field_is_a_form_error(client, world, url, field, label):
    url = url.format(nic=world["nic"].pk)
    valid = dict(next(v for u, v in forms(world) if u == url))
    reservations = Reservation.objects.count()
    response = client.post(url, {**valid, field: HOSTILE_VALUES[label]})
    assert response.status_code == 200
    text = response.content.decode()
    assert "characters are not allowed" in text
    assert Reservation.objects.count() == reservations


def test_a_pasted_nad_nested_3000_deep_is_a_finding_not_a_crash(client, world):
    deep = "[" * 3_000 + "]" * 3_000
    manifest = (
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
        "metadata:\n  name: deep\nspec:\n  config: '" + deep + "'\n"
    )
    response = client.post("/nads/lint/", {"manifest": manifest})
    assert response.status_code == 200
    assert "CONFIG_TOO_DEEP" in response.content.decode()

    response = client.post("/nads/lint/", {"manifest": deep})
    assert response.status_code == 200
    assert "MANIFEST_TOO_LARGE" in response.content.decode()


@pytest.mark.parametrize(
    "path",
    ["/?q=a%00b", "/nodes/a%00b/", "/pods/default/a%00b/diagnosis/", "/nads/new/?interface=%00"],
)
def test_a_nul_in_a_page_url_is_a_400_page(client, world, path):
    response = client.get(path)
    assert response.status_code == 400
    assert "NUL characters are not allowed" in response.content.decode()


@pytest.mark.parametrize(
    "path",
    [
        f"/nads/new/?interface={2**64}",
        f"/interfaces/{2**64}/",
        f"/interfaces/{2**64}/reserve/",
        f"/reservations/{2**64}/extend/",
        f"/nads/{2**64}/",
        f"/requests/{2**64}/",
        f"/requests/?page={2**64}",
        f"/?page={2**64}",
        f"/?speed_min={2**64}",
    ],
)
def test_numbers_no_database_column_holds_are_not_a_server_error(client, world, path):
    response = client.get(path)
    assert response.status_code < 500


@pytest.mark.parametrize(
    "value", [str(2**64), "9" * 5_000, "\u00b2", "\u0661\u0662", "1,\u00b2,3", "-1", " 7 "]
)
def test_ids_in_query_parameters_that_name_no_row_are_not_a_server_error(client, world, value):
    cluster = Cluster.objects.create(name="probe")
    attachment = NetworkAttachment.objects.create(
        cluster=cluster, namespace="default", name="fast-net", config="{}"
    )
    for path in (f"/nads/{attachment.pk}/?applied={value}", f"/nads/new/?interface={value}"):
        response = client.get(path)
        assert response.status_code == 200, (path, response.status_code)
