"""SR-IOV VFs in Debian's Chromium: the node page lists them under their PF, and the NAD
builder takes a vfio VF by pciBusID (the sysfs fixture node of tests/fixtures/sysfs.py, read by
the real agent code and synced into the database). Screenshots go to the artifacts directory."""

from __future__ import annotations

import os

# Playwright's sync API runs an event loop in the test thread; the test reads rows directly.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import pytest
from playwright.sync_api import Page, expect

from inventory.models import Interface
from inventory.sync.snapshot import apply_snapshot
from tests.factories import PASSWORD, make_cluster, make_node, make_user
from tests.fixtures import sysfs as fx

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def sriov_node(settings, tmp_path):
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = ""
    node = make_node(make_cluster(name="prod"), name="sriov-0", internal_ips=["10.0.0.9"])
    apply_snapshot(node, fx.sriov_node_snapshot(fx.sriov_node(tmp_path / "sys")))
    make_user("alice")
    return node


def log_in(page: Page, live_server, next_path: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


def test_the_node_page_shows_the_vfs_under_their_pf(
    page: Page, live_server, sriov_node, artifacts_dir
):
    page.set_viewport_size({"width": 1440, "height": 1000})
    log_in(page, live_server, "/nodes/sriov-0/")
    panel = page.get_by_test_id("sriov")
    expect(panel).to_be_visible()
    pf = panel.get_by_test_id(f"pf-{fx.PF}")
    expect(pf).to_contain_text("ens3f0")
    expect(pf).to_contain_text("3 of 8 VFs enabled")
    expect(panel.get_by_test_id(f"vf-mode-{fx.VFIO_VF}")).to_have_text(
        "host-device moves nothing (DPDK mode): the pod drives it through VFIO"
    )
    expect(panel.get_by_test_id(f"vf-mode-{fx.NETDEV_VF}")).to_have_text(
        "host-device moves its netdev into the pod"
    )
    page.screenshot(path=artifacts_dir / "sriov-node.png", full_page=True)


def test_the_builder_takes_a_vfio_vf_by_pci_bus_id(
    page: Page, live_server, sriov_node, artifacts_dir
):
    vf = Interface.objects.get(node=sriov_node, pci_address=fx.VFIO_VF)
    page.set_viewport_size({"width": 1440, "height": 1000})
    log_in(page, live_server, f"/nads/new/?interface={vf.pk}")
    expect(page.get_by_test_id(f"iface-{vf.pk}")).to_be_checked()
    expect(page.get_by_test_id(f"vfs-of-sriov-0-{fx.PF}")).to_contain_text("ens3f0")
    yaml_box = page.get_by_test_id("nad-yaml")
    expect(yaml_box).to_contain_text(f'"pciBusID": "{fx.VFIO_VF}"')
    findings = page.get_by_test_id("findings")
    expect(findings.locator("tr[data-code=USERSPACE_DPDK]")).to_contain_text("moves nothing")
    page.screenshot(path=artifacts_dir / "sriov-builder-vfio-vf.png", full_page=True)
