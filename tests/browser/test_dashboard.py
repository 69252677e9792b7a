"""The dashboard in Debian's Chromium: log in, filter, drill down, and watch a NIC move into a pod
without reloading. Screenshots of every page go to the artifacts directory."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from inventory.choices import OwnershipState
from tests.factories import (
    PASSWORD,
    make_history,
    make_interface,
    make_node,
    make_pod_attachment,
    make_reservation,
    make_team,
    make_user,
    move_into_pod,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CNI = {
    "bin_dirs": ["/opt/cni/bin"],
    "host_device": {
        "path": "/opt/cni/bin/host-device",
        "version": "1.1.1",
        "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
    },
}


@pytest.fixture
def fleet():
    """Two nodes with NICs in most states, one team, one user in it."""
    team = make_team("platform")
    user = make_user("alice", teams=[team])
    worker = make_node(name="worker-1", cni=CNI, internal_ips=["10.0.0.11"])
    other = make_node(cluster=worker.cluster, name="worker-2", cni={"bin_dirs": []}, stale=True)
    nics = {
        "eth0": make_interface(
            worker, name="eth0", state=OwnershipState.SYSTEM, reason="carries the default route"
        ),
        "cali1": make_interface(
            worker, name="cali1a2b", state=OwnershipState.CNI, reason="Calico workload link"
        ),
        "ens1f0": make_interface(
            worker, name="ens1f0", pci_address="0000:3b:00.0", driver="ice", speed_mbps=25000
        ),
        "ens1f1": make_interface(
            worker, name="ens1f1", pci_address="0000:3b:00.1", driver="ice", speed_mbps=25000
        ),
        "enp2": make_interface(
            worker,
            name="enp2s0",
            state=OwnershipState.ENSLAVED,
            master="bond0",
            master_kind="bond",
            reason="member of bond bond0",
        ),
        "pod": make_interface(
            worker,
            name="net1",
            state=OwnershipState.POD,
            holder="default/db-0",
            reason="moved into pod default/db-0 by host-device",
        ),
        "reserved": make_interface(
            other, name="ens2f0", state=OwnershipState.RESERVED, holder="platform"
        ),
        "other-free": make_interface(other, name="ens2f1", driver="mlx5_core", speed_mbps=100000),
    }
    make_reservation(nics["reserved"], team, user, purpose="DPDK trial")
    make_pod_attachment(nics["pod"], pod_name="db-0")
    make_history(nics["pod"], old_state="free", new_state="pod", message="moved into db-0")
    return {"user": user, "worker": worker, "nics": nics}


def log_in(page: Page, live_server, username: str = "alice") -> None:
    page.goto(f"{live_server.url}/")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/?next=/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Fleet")).to_be_visible()


def test_it_walks_from_the_fleet_to_a_node_and_an_interface(
    page: Page, live_server, fleet, artifacts_dir
):
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/accounts/login/")
    page.screenshot(path=artifacts_dir / "login.png")
    log_in(page, live_server)
    rows = page.locator("table[data-testid=fleet] tbody tr")
    expect(rows).to_have_count(8)
    page.screenshot(path=artifacts_dir / "fleet.png", full_page=True)

    page.locator("label.chip", has_text="free").click()
    expect(rows).to_have_count(3)
    expect(page.get_by_test_id("total")).to_have_text("3")
    # The filtered view has its own URL (bookmarkable, survives a reload).
    expect(page).to_have_url(re.compile(r"[?&]state=free(&|$)"))
    page.reload()
    expect(rows).to_have_count(3)
    page.screenshot(path=artifacts_dir / "fleet-free.png", full_page=True)

    page.get_by_role("link", name="worker-1").first.click()
    expect(page.get_by_role("heading", name="worker-1")).to_be_visible()
    expect(page.get_by_test_id("cni")).to_contain_text("1.1.1")
    expect(page.get_by_test_id("group-enslaved")).to_contain_text("bond0")
    page.screenshot(path=artifacts_dir / "node.png", full_page=True)

    # (the links diagram links it too)
    page.get_by_test_id("group-pod").get_by_role("link", name="net1").click()
    expect(page.get_by_role("heading", name="net1")).to_be_visible()
    expect(page.get_by_test_id("pods")).to_contain_text("default/db-0")
    expect(page.get_by_test_id("history")).to_contain_text("moved into db-0")
    page.screenshot(path=artifacts_dir / "interface.png", full_page=True)


def test_a_nic_moving_into_a_pod_shows_up_without_a_reload(
    page: Page, live_server, fleet, artifacts_dir
):
    nic = fleet["nics"]["ens1f0"]
    log_in(page, live_server)
    badge = page.locator(f"#interface-{nic.pk} .badge")
    expect(badge).to_have_text("free")
    # Mark the document: a reload would lose the mark.
    page.evaluate("window.notReloaded = true")

    move_into_pod(nic, pod="default/web-0")

    expect(badge).to_have_text("pod", timeout=10_000)
    expect(badge).to_have_attribute("title", "moved into pod default/web-0 by host-device")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=artifacts_dir / "fleet-live.png", full_page=True)


def test_a_hostile_alias_renders_as_text(page: Page, live_server, fleet, artifacts_dir):
    nic = fleet["nics"]["ens1f1"]
    nic.alias = "<script>alert(1)</script><img src=x onerror=alert(2)>"
    nic.save()
    dialogs = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, live_server)
    expect(page.locator(f"#interface-{nic.pk} .alias")).to_have_text(nic.alias)
    page.goto(f"{live_server.url}/interfaces/{nic.pk}/")
    expect(page.get_by_test_id("alias")).to_have_text(nic.alias)
    page.screenshot(path=artifacts_dir / "interface-hostile-alias.png", full_page=True)
    assert dialogs == []
