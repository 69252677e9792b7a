"""The node page in Debian's Chromium when the agent's snapshot contradicts the Kubernetes API:
the contradictions are listed with their severity, and the NIC kept as the node's uplink is
still drawn as the primary one although the snapshot shows no address on it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from inventory.choices import OwnershipState
from tests.browser.pages import log_in
from tests.factories import make_interface, make_node, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HIDDEN = (
    "The Kubernetes API lists 10.0.0.11 as this node's InternalIP, but no NIC in the agent's"
    " latest snapshot holds it; eth0 held it when last reported and stays system."
)
APART = (
    "The InternalIP 10.0.0.11 is on eth0, but the IPv6 default route leaves through eth1: both"
    " stay system."
)


@pytest.fixture
def flagged():
    make_user("alice", teams=[make_team("platform")])
    node = make_node(
        name="worker-1",
        internal_ips=["10.0.0.11"],
        findings=[
            {"code": "internal_ip_on_no_nic", "severity": "warning", "message": HIDDEN}
            | {"kept": ["eth0"]},
            {"code": "internal_ip_apart_from_default_route", "severity": "info"}
            | {"message": APART, "kept": []},
        ],
    )
    make_interface(
        node,
        name="eth0",
        state=OwnershipState.SYSTEM,
        pinned=["10.0.0.11", "default-route"],
        reason="held the node's InternalIP 10.0.0.11 (Kubernetes API) when last reported",
    )
    make_interface(node, name="ens2f1")
    return node


def test_the_node_page_lists_the_contradictions(page: Page, live_server, flagged, artifacts_dir):
    page.set_viewport_size({"width": 1440, "height": 1000})
    log_in(page, live_server, next_path="/nodes/worker-1/")
    panel = page.get_by_test_id("contradictions")
    expect(panel).to_be_visible()
    expect(panel.locator("li[data-code=internal_ip_on_no_nic]")).to_contain_text(
        "warning " + HIDDEN
    )
    expect(panel.locator("li[data-code=internal_ip_apart_from_default_route]")).to_contain_text(
        "info " + APART
    )
    expect(page.get_by_test_id("diagram-link-eth0")).to_have_class("box link s-system primary")
    expect(page.get_by_test_id("diagram-link-ens2f1")).not_to_have_class("box link s-free primary")
    panel.screenshot(path=artifacts_dir / "node-contradictions.png")
