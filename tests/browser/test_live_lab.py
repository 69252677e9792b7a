"""The acceptance path of the dashboard with real parts: a lab pod takes a NIC through the real
host-device plugin, the portal's sweep sees it, and the open page's badge turns `pod` without a
reload. The page's own htmx polling carries the change."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from inventory.models import Interface
from inventory.services import polling
from tests.factories import PASSWORD, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.lab, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def portal(lab, settings):
    """The portal watching the lab; these tests sweep themselves, from an empty inventory."""
    lab.reset()
    settings.KUBECONFIG = str(lab.portal_kubeconfig)
    settings.AGENT_MASTER_KEY = lab.agent_master_key
    settings.CLUSTER_NAME = "lab"
    settings.AGENT_NAMESPACE = "nicportal"
    yield lab
    lab.reset()


def test_a_lab_pod_taking_a_nic_turns_its_badge_pod_without_a_reload(
    page: Page, live_server, portal, artifacts_dir
):
    polling.sweep_inline(workers=4)
    nic = Interface.objects.get(node__name="node-c", name="eth1")
    make_user("sre", teams=[make_team("platform")])
    page.goto(f"{live_server.url}/accounts/login/?next=/interfaces/{nic.pk}/")
    page.get_by_label("Username").fill("sre")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    badge = page.get_by_test_id("owner").locator(".badge").first
    expect(badge).to_have_text("free")
    page.screenshot(path=str(artifacts_dir / "live-lab-before.png"), full_page=True)

    portal.create_nad(
        "default",
        "live-nic",
        {
            "cniVersion": "0.3.1",
            "name": "live-nic",
            "type": "host-device",
            "hwaddr": nic.mac,
        },
    )
    pod = portal.create_pod("default", "live-0", "node-c", "default/live-nic@net1")
    assert pod["status"]["phase"] == "Running"
    polling.sweep_inline(workers=4)

    expect(badge).to_have_text("pod", timeout=10_000)
    expect(page.locator("body")).to_contain_text("default/live-0")
    page.screenshot(path=str(artifacts_dir / "live-lab-after.png"), full_page=True)


def test_last_seen_and_the_last_sweep_advance_while_the_page_is_open(
    page: Page, live_server, portal, artifacts_dir
):
    polling.sweep_inline(workers=4)
    nic = Interface.objects.get(node__name="node-a", name="eth1")
    make_user("sre", teams=[make_team("platform")])
    page.goto(f"{live_server.url}/accounts/login/?next=/nodes/node-a/")
    page.get_by_label("Username").fill("sre")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    contact = page.get_by_test_id("last-contact")
    seen = page.get_by_test_id(f"seen-{nic.pk}")
    swept = page.get_by_test_id("sweep-at")
    expect(page.get_by_test_id("sweep-outcome")).to_have_text("ok")
    before = {
        "contact": contact.get_attribute("datetime"),
        "seen": seen.get_attribute("datetime"),
        "sweep": swept.get_attribute("datetime"),
    }
    expect(contact).to_have_text(re.compile(r"just now|\d+ s ago"))
    page.evaluate("window.notReloaded = true")
    page.wait_for_timeout(1100)

    # Nothing changed on the nodes: every agent answers 304 and the sweep writes no row.
    report = polling.sweep_inline(workers=4)
    assert report.agents_ok == 3 and report.stats.rows_written == 0

    expect(contact).not_to_have_attribute("datetime", before["contact"], timeout=10_000)
    expect(seen).not_to_have_attribute("datetime", before["seen"], timeout=10_000)
    expect(swept).not_to_have_attribute("datetime", before["sweep"], timeout=15_000)
    assert contact.get_attribute("datetime") > before["contact"]
    assert seen.get_attribute("datetime") == contact.get_attribute("datetime")
    assert page.evaluate("window.notReloaded") is True
    page.screenshot(path=str(artifacts_dir / "node-last-seen.png"), full_page=True)
