"""The node page's diagram in Debian's Chromium: the node, its links with the primary one
marked, bond and bridge members beside their master, a NIC in a pod with the pod and the NAD;
every name is text, never markup."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from inventory.choices import OwnershipState
from tests.browser.pages import log_in
from tests.factories import (
    make_interface,
    make_node,
    make_pod_attachment,
    make_team,
    make_user,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def worker():
    make_user("alice", teams=[make_team("platform")])
    node = make_node(name="worker-1", internal_ips=["10.0.0.11"])
    make_interface(
        node,
        name="eth0",
        state=OwnershipState.SYSTEM,
        default_route_v4=True,
        addresses=[{"address": "10.0.0.11", "prefixlen": 24}],
        reason="carries the default route",
    )
    make_interface(node, name="bond0", kind="bond", state=OwnershipState.VIRTUAL)
    for name in ("ens1f0", "ens1f1"):
        make_interface(
            node, name=name, master="bond0", master_kind="bond", state=OwnershipState.ENSLAVED
        )
    make_interface(node, name="br-ex", kind="bridge", state=OwnershipState.VIRTUAL)
    make_interface(node, name="eth4", master="br-ex", state=OwnershipState.ENSLAVED)
    in_pod = make_interface(node, name="ens2f0", state=OwnershipState.POD, holder="db/db-0")
    make_pod_attachment(in_pod, namespace="db", pod_name="db-0", nad_name="fast-net")
    hostile = make_interface(node, name="ens3f0", state=OwnershipState.POD)
    make_pod_attachment(hostile, namespace="x", pod_name=HOSTILE, nad_name="evil")
    make_interface(node, name="ens2f1")
    return node


def test_the_node_page_draws_its_links(page: Page, live_server, worker, artifacts_dir):
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    page.set_viewport_size({"width": 1440, "height": 1000})
    log_in(page, live_server, next_path="/nodes/worker-1/")
    diagram = page.get_by_test_id("node-diagram")
    expect(diagram).to_be_visible()
    expect(page.get_by_test_id("diagram-node-worker-1")).to_contain_text("10.0.0.11")

    primary = page.get_by_test_id("diagram-link-eth0")
    expect(primary).to_have_class("box link s-system primary")
    expect(primary).to_contain_text("primary")

    bond = page.get_by_test_id("diagram-link-bond0").locator("rect").bounding_box()
    members = [
        page.get_by_test_id(f"diagram-link-{name}").locator("rect").bounding_box()
        for name in ("ens1f0", "ens1f1")
    ]
    assert all(m["x"] > bond["x"] + bond["width"] for m in members)  # beside their master
    assert members[0]["y"] == bond["y"] and members[1]["y"] > members[0]["y"]
    expect(page.get_by_test_id("diagram-link-eth4")).to_be_visible()

    pod = page.get_by_test_id("diagram-pod-db/db-0")
    expect(pod).to_contain_text("NAD default/fast-net as net1")
    nic = page.get_by_test_id("diagram-link-ens2f0").locator("rect").bounding_box()
    assert pod.locator("rect").bounding_box()["x"] > nic["x"] + nic["width"]
    expect(page.locator("path.edge.pod")).to_have_count(2)

    # The hostile pod name is text in the picture, not an element.
    expect(page.locator(".node-diagram text", has_text="<img src=x")).to_have_count(1)
    expect(page.locator(".node-diagram img")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "node-diagram.png", full_page=True)

    # A link box opens its interface.
    page.get_by_test_id("diagram-link-ens2f1").locator("a").click()
    expect(page.get_by_role("heading", name="ens2f1")).to_be_visible()
    assert dialogs == []
