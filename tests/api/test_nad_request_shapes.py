"""The NAD API takes what people write: CNI's own IPAM shapes, interfaces named "node/name", and
answers a bad field with the rule it breaks, never a Python value or "the expected form"."""

from __future__ import annotations

import pytest

from inventory.models import NetworkAttachment
from tests.api.builders import make_free_interface, make_node

pytestmark = pytest.mark.django_db

RENDER = "/api/v1/nads/render/"


@pytest.fixture
def nodes(db):
    """eth3 on n1 and n2 (and on no other node), eth1 on all three."""
    n1, n2, n3 = make_node("n1"), make_node("n2"), make_node("n3")
    return {
        "n1/eth3": make_free_interface(n1, "eth3", mac="02:00:00:00:01:03"),
        "n2/eth3": make_free_interface(n2, "eth3", mac="02:00:00:00:02:03"),
        "n1/eth1": make_free_interface(n1, "eth1", mac="02:00:00:00:01:01"),
        "n2/eth1": make_free_interface(n2, "eth1", mac="02:00:00:00:02:01"),
        "n3/eth1": make_free_interface(n3, "eth1", mac="02:00:00:00:03:01"),
    }


def render(client, **fields):
    body = {"namespace": "default", "name": "fast", **fields}
    body.setdefault("interfaces", ["n1/eth3"])
    return client.post(RENDER, body, format="json")


# --- IPAM in CNI's own shapes ----------------------------------------------------------------


def test_static_addresses_in_cnis_form_are_accepted(people, nodes, client_for):
    response = render(
        client_for(people.owner),
        ipam={"type": "static", "addresses": [{"address": "192.0.2.10/24"}]},
    )
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["ok"] is True, data["findings"]
    assert data["nads"][0]["config"]["ipam"] == {
        "type": "static",
        "addresses": [{"address": "192.0.2.10/24"}],
    }


def test_cnis_static_form_with_gateway_and_routes_round_trips(people, nodes, client_for):
    ipam = {
        "type": "static",
        "addresses": [{"address": "192.0.2.10/24", "gateway": "192.0.2.1"}],
        "routes": [{"dst": "10.2.0.0/16", "gw": "192.0.2.1"}, {"dst": "10.3.0.0/16"}],
    }
    data = render(client_for(people.owner), ipam=ipam).json()
    assert data["ok"] is True, data["findings"]
    assert data["nads"][0]["config"]["ipam"] == ipam


def test_host_local_ranges_in_cnis_form_are_accepted(people, nodes, client_for):
    ipam = {
        "type": "host-local",
        "ranges": [
            [{"subnet": "192.0.2.0/24", "rangeStart": "192.0.2.100", "gateway": "192.0.2.1"}]
        ],
    }
    data = render(client_for(people.owner), ipam=ipam).json()
    assert data["ok"] is True, data["findings"]
    assert data["nads"][0]["config"]["ipam"]["ranges"] == [
        [{"subnet": "192.0.2.0/24", "rangeStart": "192.0.2.100", "gateway": "192.0.2.1"}]
    ]


@pytest.mark.parametrize(
    ("ipam", "field", "message"),
    [
        (
            {"type": "static", "addresses": [{"addr": "192.0.2.10/24"}]},
            "ipam.addresses[0]",
            "Unknown key(s) addr; known: address, gateway.",
        ),
        (
            {"type": "static", "addresses": [17]},
            "ipam.addresses[0]",
            'Expected CIDR strings such as "192.0.2.10/24" or objects {"address": '
            '"192.0.2.10/24"}, got a number.',
        ),
        (
            {"type": "static", "addresses": {"address": "192.0.2.10/24"}},
            "ipam.addresses",
            "got an object",
        ),
        (
            {
                "type": "static",
                "addresses": [
                    {"address": "192.0.2.10/24", "gateway": "192.0.2.1"},
                    {"address": "198.51.100.10/24", "gateway": "198.51.100.1"},
                ],
            },
            "ipam.gateway",
            "Several gateways given (192.0.2.1, 198.51.100.1)",
        ),
        (
            {"type": "host-local", "ranges": [[{"subnet": "192.0.2.0/25"}, {"subnet": "b"}]]},
            "ipam.ranges",
            "2 ranges given: NICPortal builds one range per attachment",
        ),
        ({"type": "static", "routes": [{"gw": "192.0.2.1"}]}, "ipam.routes[0]", '"dst"'),
        ({"type": ["static"]}, "ipam.type", "Expected a string, got a list."),
        (
            {"type": "static", "adresses": "192.0.2.10/24"},
            "ipam",
            "Unknown IPAM field(s): adresses",
        ),
    ],
)
def test_ipam_that_cannot_be_read_is_a_400_naming_the_field(
    people, nodes, client_for, ipam, field, message
):
    response = render(client_for(people.owner), ipam=ipam)
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body, body
    assert any(message in text for text in body[field]), body[field]
    assert "{'" not in response.content.decode()  # no Python repr


def test_a_cidr_without_prefix_is_a_finding_naming_the_rule(people, nodes, client_for):
    data = render(
        client_for(people.owner), ipam={"type": "static", "addresses": [{"address": "192.0.2.10"}]}
    ).json()
    assert data["ok"] is False
    [finding] = [f for f in data["findings"] if f["code"] == "IPAM_ADDRESS_INVALID"]
    assert finding["field"] == "ipam.addresses"
    assert 'Address "192.0.2.10" is not usable: it has no prefix length.' == finding["message"]


# --- interfaces by node and name -------------------------------------------------------------


def test_eth3_on_n1_and_n2_is_one_request(people, nodes, client_for):
    response = render(client_for(people.owner), interfaces=["n1/eth3", "n2/eth3"])
    assert response.status_code == 200, response.content
    data = response.json()
    assert data["ok"] is True, data["findings"]
    # No other node has an eth3: one NAD by name, pinned to n1 and n2.
    [rendered] = data["nads"]
    assert rendered["config"]["device"] == "eth3"
    assert rendered["nodes"] == ["n1", "n2"]
    assert "- n1" in data["pod_snippet"] and "- n2" in data["pod_snippet"]


def test_a_name_another_node_has_gives_one_nad_per_node_by_mac(people, nodes, client_for):
    data = render(client_for(people.owner), interfaces=["n1/eth1", "n2/eth1"]).json()
    assert data["ok"] is True, data["findings"]
    assert [(n["name"], n["config"]["hwaddr"]) for n in data["nads"]] == [
        ("fast-n1", "02:00:00:00:01:01"),
        ("fast-n2", "02:00:00:00:02:01"),
    ]


def test_ids_and_names_may_be_mixed(people, nodes, client_for):
    response = render(client_for(people.owner), interfaces=[nodes["n1/eth3"].pk, "n2/eth3"])
    assert response.json()["nads"][0]["nodes"] == ["n1", "n2"]


def test_apply_by_name_stores_what_the_names_mean(people, nodes, client_for, settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "missing")  # resolved before the cluster is called
    response = client_for(people.owner).post(
        "/api/v1/nads/apply/",
        {"namespace": "default", "name": "fast", "interfaces": ["n1/eth3", "n9/eth3"]},
        format="json",
    )
    assert response.status_code == 400
    assert response.json() == {
        "interfaces": ["interfaces[1]: there is no node n9 in cluster default."]
    }
    assert not NetworkAttachment.objects.exists()


@pytest.mark.parametrize(
    ("interfaces", "message"),
    [
        (["n1/eth9"], "interfaces[0]: node n1 has no interface named eth9."),
        (["n1/eth3", "n7/eth3"], "interfaces[1]: there is no node n7 in cluster default."),
        ([999999], "No interface with id 999999."),
    ],
)
def test_an_interface_that_is_not_there_is_a_400_on_interfaces(
    people, nodes, client_for, interfaces, message
):
    response = render(client_for(people.owner), interfaces=interfaces)
    assert response.status_code == 400
    assert response.json() == {"interfaces": [message]}


@pytest.mark.parametrize("bad", ["eth3", "n1/", "/eth3", "n1/eth 3", True, 0, 1.5, None])
def test_an_interface_reference_of_no_known_shape_says_both_shapes(people, nodes, client_for, bad):
    response = render(client_for(people.owner), interfaces=[bad])
    assert response.status_code == 400
    assert response.json()["interfaces"] == {
        "0": [
            'Expected an interface id (an integer of at least 1) or "node/name" such as "n1/eth3".'
        ]
    }


# --- names: the rule, not "the expected form" --------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        (
            {"namespace": "Team-Blue"},
            "namespace",
            "Not a DNS-1123 label: it has upper-case letters; a DNS-1123 label is 1 to 63 "
            "lower-case letters, digits or '-', starting and ending with a letter or digit "
            '(regex [a-z0-9]([-a-z0-9]*[a-z0-9])?), e.g. "team-blue".',
        ),
        ({"namespace": "team_blue"}, "namespace", "it may only hold lower-case letters"),
        ({"namespace": "a" * 64}, "namespace", "it is 64 characters long (at most 63)"),
        ({"namespace": ""}, "namespace", "Empty: a DNS-1123 label is 1 to 63"),
        (
            {"name": "fast..net"},
            "name",
            "Not a DNS-1123 subdomain: it may only hold lower-case letters, digits, '-' and '.', "
            "and each part between dots must start and end with a letter or digit; a DNS-1123 "
            "subdomain is at most 253 characters",
        ),
        (
            {"pod_interface": "net 1"},
            "pod_interface",
            'Not a pod interface name: it contains " "; a pod interface name is 1 to 15 '
            "letters, digits, '_', '.' or '-', e.g. \"net1\".",
        ),
        ({"pod_interface": "a" * 16}, "pod_interface", "it is 16 characters long (at most 15)"),
    ],
)
def test_a_bad_name_is_answered_with_the_rule(people, nodes, client_for, fields, field, message):
    response = render(client_for(people.owner), **fields)
    assert response.status_code == 400
    [text] = response.json()[field]
    assert message in text
    assert "expected form" not in text


def test_other_pod_interfaces_say_which_item_breaks_the_rule(people, nodes, client_for):
    response = render(client_for(people.owner), other_pod_interfaces=["net2", "net/3"])
    assert response.status_code == 400
    assert response.json()["other_pod_interfaces"] == {
        "1": [
            'Not a pod interface name: it contains "/"; a pod interface name is 1 to 15 '
            "letters, digits, '_', '.' or '-', e.g. \"net1\"."
        ]
    }
