"""The NAD builder in Debian's Chromium against the lab: build, watch the preview follow the
form, apply, and find the NAD in the database and in the lab's API. Screenshots go to the
artifacts directory."""

from __future__ import annotations

import os

# Playwright's sync API runs an event loop in the test thread; the test reads rows directly.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

import json
import re

import pytest
from playwright.sync_api import Page, expect

from inventory.choices import NadOrigin
from inventory.clients.cluster import ClusterClient
from inventory.models import Interface, NetworkAttachment, TeamNamespace
from tests.factories import PASSWORD, make_cluster, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def portal(lab_portal):
    return lab_portal


def log_in(page: Page, live_server, next_path: str) -> None:
    page.goto(f"{live_server.url}/accounts/login/?next={next_path}")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")


@pytest.mark.lab
def test_it_builds_previews_and_applies_a_nad_through_the_form(
    page: Page, live_server, portal, artifacts_dir
):
    blue = make_team("blue")
    TeamNamespace.objects.create(team=blue, pattern="default")  # where alice may apply
    make_user("alice", teams=[blue])
    eth1 = Interface.objects.get(node__name="node-a", name="eth1")
    uplink = Interface.objects.get(node__name="node-a", name="eth0")
    page.set_viewport_size({"width": 1440, "height": 1000})

    log_in(page, live_server, f"/nads/new/?interface={eth1.pk}")
    expect(page.get_by_role("heading", name="Build a NAD")).to_be_visible()
    # Only usable interfaces are offered: eth1 (prefilled), not the node's uplink.
    expect(page.get_by_test_id(f"iface-{eth1.pk}")).to_be_checked()
    expect(page.get_by_test_id(f"iface-{uplink.pk}")).to_have_count(0)
    yaml_box = page.get_by_test_id("nad-yaml")
    expect(yaml_box).to_contain_text("name: node-a-eth1")
    # Every lab node has an eth1: auto selects node-a's by its MAC, never by a name that would
    # take another node's eth1 from a pod scheduled there.
    expect(yaml_box).to_contain_text(f'"hwaddr": "{eth1.mac}"')
    expect(page.get_by_test_id("pod-snippet")).to_contain_text("default/node-a-eth1@net1")
    page.screenshot(path=artifacts_dir / "nad-builder-prefilled.png", full_page=True)

    page.fill("#id_name", "lab-fast")
    expect(yaml_box).to_contain_text("name: lab-fast")
    expect(yaml_box).to_contain_text('"name": "lab-fast"')
    expect(page.get_by_test_id("pod-snippet")).to_contain_text("default/lab-fast@net1")
    page.select_option("#id_selector", "device")
    expect(yaml_box).to_contain_text('"device": "eth1"')
    matches = page.locator("[data-testid=findings] tr[data-code=SELECTOR_MATCHES_OTHER_NODES]")
    expect(matches).to_contain_text("also matches an interface on node-b, node-c")
    page.select_option("#id_selector", "auto")
    expect(yaml_box).to_contain_text(f'"hwaddr": "{eth1.mac}"')
    expect(page.locator("[data-testid=findings] tr[data-code=SELECTOR_CHOSEN]")).to_have_count(1)
    page.screenshot(path=artifacts_dir / "nad-builder-renamed.png", full_page=True)

    page.get_by_test_id("apply").click()
    expect(page).to_have_url(re.compile(r"/nads/\d+/$"))
    expect(page.get_by_role("heading", name="default/lab-fast")).to_be_visible()
    expect(page.get_by_test_id("nad-yaml")).to_contain_text(f'"hwaddr": "{eth1.mac}"')
    page.screenshot(path=artifacts_dir / "nad-applied.png", full_page=True)

    row = NetworkAttachment.objects.get(namespace="default", name="lab-fast")
    assert (row.origin, row.applied_by.username, row.in_cluster) == (
        NadOrigin.PORTAL,
        "alice",
        True,
    )
    assert page.url.endswith(f"/nads/{row.pk}/")
    with ClusterClient.from_settings() as client:
        in_lab = client.get_nad("default", "lab-fast")
    assert json.loads(in_lab.config)["hwaddr"] == eth1.mac

    # Applying the same name again is refused on the form; the NAD stays as it was.
    page.goto(f"{live_server.url}/nads/new/?interface={eth1.pk}")
    page.fill("#id_name", "lab-fast")
    expect(yaml_box).to_contain_text("name: lab-fast")
    page.get_by_test_id("apply").click()
    expect(page.get_by_test_id("apply-errors")).to_contain_text(
        "NAD default/lab-fast already exists in the cluster: choose another name or delete it "
        "first."
    )
    page.screenshot(path=artifacts_dir / "nad-apply-conflict.png", full_page=True)
    assert NetworkAttachment.objects.filter(name="lab-fast").count() == 1


def test_the_lint_page_explains_a_comment_inside_the_config(
    page: Page, live_server, settings, artifacts_dir
):
    settings.CLUSTER_NAME = "lint"
    make_cluster(name="lint")
    make_user("alice", teams=[make_team("blue")])
    log_in(page, live_server, "/nads/lint/")
    expect(page.get_by_role("heading", name="Lint a pasted NAD")).to_be_visible()
    page.fill(
        "#id_manifest",
        "apiVersion: k8s.cni.cncf.io/v1\n"
        "kind: NetworkAttachmentDefinition\n"
        "metadata: {name: hd, namespace: default}\n"
        "spec:\n"
        "  config: |\n"
        '    {"cniVersion": "0.3.1", "name": "hd", "type": "host-device",\n'
        "     # <b>the second NIC</b>\n"
        '     "device": "eth1"}\n',
    )
    page.get_by_role("button", name="Lint").click()
    finding = page.locator("[data-testid=findings] tr[data-code=CONFIG_INVALID_JSON]")
    expect(finding).to_contain_text("it contains a comment (`# <b>the second NIC</b>`)")
    expect(finding).to_contain_text("JSON has no comments")
    expect(finding.locator(".badge")).to_have_text("error")
    assert page.locator("[data-testid=findings] b").count() == 0  # shown as text, not markup
    page.screenshot(path=artifacts_dir / "nad-lint-comment.png", full_page=True)
