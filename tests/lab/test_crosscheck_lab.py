"""A snapshot is cross-checked with the Kubernetes API (the lab, end to end).

node-a is compromised, or its agent broken: what answers for it holds node-a's real key, so its
signed answers are accepted, and it reports eth0 (the NIC with node-a's InternalIP and default
route) without any address or route, or leaves eth0 out. The real API server still lists
node-a's InternalIP. eth0 stays `system` with a reason naming the Kubernetes API, the NAD builder
refuses it, and the contradiction is on the node page, in the API, in the log and in the node's
history; once the real agent answers again, it clears.
"""

from __future__ import annotations

import logging

import pytest
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from inventory.models import HistoryEntry, Node
from inventory.services import polling
from tests.factories import make_user
from tests.lab.test_rogue_agents import FakeAgent, eth0, real_snapshot, render_eth0

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

CONTRADICTS = "snapshot contradicts the Kubernetes API"


def hide_eth0(document: dict) -> dict:
    for link in document["links"]:
        if link["name"] == "eth0":
            link.update(addresses=[], default_route_v4=False, default_route_v6=False)
    return document


def drop_eth0(document: dict) -> dict:
    document["links"] = [link for link in document["links"] if link["name"] != "eth0"]
    return document


FORGERIES = {"hides-eth0s-address-and-route": hide_eth0, "leaves-eth0-out": drop_eth0}


@pytest.fixture
def compromised_agent(lab_portal):
    """A fake agent for node-a that signs with node-a's real key (stolen from the node)."""
    server = FakeAgent()
    server.sign_with = lab_portal.agent_key("node-a")
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("forgery", list(FORGERIES))
def test_a_forged_snapshot_cannot_free_the_nic_with_the_nodes_internal_ip(
    lab_portal, compromised_agent, forgery, caplog, client
):
    lab = lab_portal
    internal_ip = lab.node("node-a").internal_ip
    before = eth0()
    assert before.state == "system"
    assert before.pinned == [internal_ip, "default-route"]
    assert Node.objects.get(name="node-a").findings == []

    compromised_agent.forged = FORGERIES[forgery](real_snapshot(lab, "node-a"))
    Node.objects.filter(name="node-a").update(agent_url_override=compromised_agent.url)
    with caplog.at_level(logging.INFO):
        stats = polling.poll_node(Node.objects.get(name="node-a").pk)

    # The forged answer was signed with node-a's key: accepted, and applied.
    assert stats.agent_failures == 0 and len(compromised_agent.requests) == 1
    node = Node.objects.get(name="node-a")
    assert node.agent_error == ""
    row = eth0()
    assert row.present is (forgery != "leaves-eth0-out")
    assert row.state == "system"
    assert f"held the node's InternalIP {internal_ip} (Kubernetes API)" in row.reason
    result = render_eth0()
    assert result["ok"] is False
    assert "PRIMARY_NIC" in {f["code"] for f in result["findings"] if f["severity"] == "error"}

    # Flagged, not trusted silently: node page, API, log, history.
    codes = [finding["code"] for finding in node.findings]
    assert codes == ["internal_ip_on_no_nic", "default_route_gone"]
    message = node.findings[0]["message"]
    assert message == (
        f"The Kubernetes API lists {internal_ip} as this node's InternalIP, but no NIC in the"
        " agent's latest snapshot holds it; eth0 held it when last reported and stays system."
    )
    viewer = make_user("viewer")
    client.force_login(viewer)
    page = client.get("/nodes/node-a/").content.decode()
    assert 'data-testid="contradictions"' in page and escape(message) in page
    api = APIClient()
    api.force_authenticate(viewer)
    (listed,) = api.get("/api/v1/nodes/", {"name": "node-a"}).json()["results"]
    assert listed["findings"] == node.findings
    assert f"node=node-a {CONTRADICTS}: {message}" in caplog.text
    assert HistoryEntry.objects.filter(node=node, message=f"{CONTRADICTS}: {message}").exists()
    metric = 'nicportal_snapshot_contradictions{cluster="lab",code="internal_ip_on_no_nic"}'
    assert f"{metric} 1.0" in Client().get("/metrics").content.decode()

    # The real agent answers again: the facts agree with the API, the findings clear.
    Node.objects.filter(name="node-a").update(agent_url_override="")
    polling.poll_node(node.pk)
    node.refresh_from_db()
    assert node.findings == [] and node.agent_error == ""
    assert eth0().reason == "carries the default route"
    assert 'data-testid="contradictions"' not in client.get("/nodes/node-a/").content.decode()
    assert f"{metric} 0.0" in Client().get("/metrics").content.decode()
