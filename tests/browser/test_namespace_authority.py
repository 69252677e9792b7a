"""Namespace authority in the NAD builder, in Debian's Chromium: a team-mate applies into the
team's namespace, an outsider is refused with the reason (before and after pressing Apply), a
team without namespaces builds and downloads but cannot apply, staff apply anywhere, anonymous
is sent to the login. Applies go to a real kube-apiserver with the NAD CRD
(tests/integration/real_api_server.py)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from inventory.models import NetworkAttachment, TeamNamespace
from tests.browser.pages import log_in
from tests.factories import make_cluster, make_interface, make_node, make_team, make_user
from tests.integration.real_api_server import nad_api, real_api_server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def world(nad_api, settings):  # noqa: F811 (the fixture imported above)
    cluster = make_cluster(name="nsauth")
    settings.CLUSTER_NAME = cluster.name
    settings.MULTUS_VERSION = ""
    settings.KUBECONFIG = str(nad_api.kubeconfig)
    for namespace in ("netlab", "netlab-train", "storage"):
        nad_api.ensure_namespace(namespace)
    netlab, storage, empty = make_team("netlab"), make_team("storage"), make_team("empty")
    TeamNamespace.objects.create(team=netlab, pattern="netlab")
    TeamNamespace.objects.create(team=netlab, pattern="netlab-*")
    TeamNamespace.objects.create(team=storage, pattern="storage")
    make_user("olivia", teams=[netlab])
    make_user("mateo", teams=[netlab])
    make_user("oscar", teams=[storage])
    make_user("nina", teams=[empty])
    make_user("sam", staff=True)
    nic = make_interface(make_node(cluster=cluster, name="worker-1"), name="ens1f0")
    return {"api": nad_api, "nic": nic}


def open_builder(page: Page, live_server, world, username: str) -> None:
    page.set_viewport_size({"width": 1440, "height": 1000})
    log_in(page, live_server, username, next_path=f"/nads/new/?interface={world['nic'].pk}")
    expect(page.get_by_test_id("nad-yaml")).to_contain_text("name: worker-1-ens1f0")


def fill(page: Page, namespace: str, name: str) -> None:
    page.fill("#id_namespace", namespace)
    page.fill("#id_name", name)
    expect(page.get_by_test_id("pod-snippet")).to_contain_text(f"{namespace}/{name}@net1")


def test_a_team_mate_applies_into_the_teams_namespace(
    page: Page, live_server, world, artifacts_dir
):
    open_builder(page, live_server, world, "mateo")
    expect(page.get_by_test_id("apply-scope")).to_have_text(
        "Team netlab may apply into: netlab, netlab-*"
    )
    fill(page, "netlab-train", "fast")
    expect(page.get_by_test_id("apply-refusal")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "nsauth-mate.png", full_page=True)
    page.get_by_test_id("apply").click()
    expect(page).to_have_url(re.compile(r"/nads/\d+/$"))
    expect(page.get_by_role("heading", name="netlab-train/fast")).to_be_visible()
    assert world["api"].has_nad("netlab-train", "fast")
    row = NetworkAttachment.objects.get(namespace="netlab-train", name="fast")
    assert (row.team.name, row.applied_by.username) == ("netlab", "mateo")


def test_an_outsider_is_refused_with_the_reason(page: Page, live_server, world, artifacts_dir):
    open_builder(page, live_server, world, "oscar")
    expect(page.get_by_test_id("apply-scope")).to_have_text("Team storage may apply into: storage")
    fill(page, "netlab", "stolen")
    reason = (
        "Team storage may not apply a NAD into namespace netlab: team storage may apply into: "
        "storage."
    )
    # Said with the preview, before Apply is pressed...
    expect(page.get_by_test_id("apply-refusal")).to_have_text(f"Apply: {reason}")
    # ... and by the apply itself, which creates nothing.
    page.get_by_test_id("apply").click()
    expect(page.get_by_test_id("apply-errors")).to_have_text(reason)
    page.screenshot(path=artifacts_dir / "nsauth-outsider.png", full_page=True)
    assert not world["api"].has_nad("netlab", "stolen")
    assert not NetworkAttachment.objects.exists()


def test_a_team_without_namespaces_builds_and_downloads_but_cannot_apply(
    page: Page, live_server, world, artifacts_dir
):
    open_builder(page, live_server, world, "nina")
    apply = page.get_by_test_id("apply")
    expect(apply).to_be_disabled()
    expect(page.get_by_test_id("apply-scope")).to_contain_text(
        "Team empty may apply into no namespace"
    )
    expect(page.get_by_test_id("apply-scope")).to_contain_text("build and download the YAML")
    fill(page, "netlab", "mine")
    expect(page.get_by_test_id("nad-yaml")).to_contain_text("name: mine")
    expect(page.get_by_test_id("apply-refusal")).to_contain_text(
        "Team empty may not apply a NAD into namespace netlab"
    )
    with page.expect_download() as download:
        page.get_by_test_id("download-yaml").click()
    assert download.value.suggested_filename == "mine.yaml"
    text = download.value.path().read_text()
    assert "name: mine" in text and "namespace: netlab" in text
    page.screenshot(path=artifacts_dir / "nsauth-no-namespaces.png", full_page=True)
    expect(apply).to_be_disabled()
    assert not world["api"].has_nad("netlab", "mine")


def test_staff_apply_anywhere(page: Page, live_server, world):
    open_builder(page, live_server, world, "sam")
    expect(page.get_by_test_id("apply-scope")).to_have_text(
        "As staff you may apply into any namespace."
    )
    fill(page, "kube-system", "staff-net")
    expect(page.get_by_test_id("apply-refusal")).to_have_count(0)
    page.get_by_test_id("apply").click()
    expect(page).to_have_url(re.compile(r"/nads/\d+/$"))
    assert world["api"].has_nad("kube-system", "staff-net")


def test_anonymous_is_sent_to_the_login(page: Page, live_server, world):
    page.goto(f"{live_server.url}/nads/new/?interface={world['nic'].pk}")
    expect(page).to_have_url(re.compile(r"/accounts/login/\?next="))
    assert page.get_by_test_id("apply").count() == 0
