"""Releasing a reservation asks first; applying a NAD shows that it is under way."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from inventory.choices import OwnershipState
from inventory.models import Reservation, TeamNamespace
from inventory.services import reservations
from tests.browser.pages import log_in
from tests.factories import make_cluster, make_interface, make_node, make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def held_nic():
    team = make_team("platform")
    user = make_user("alice", teams=[team])
    nic = make_interface(
        make_node(name="worker-1"), name="ens1f0", driver="ice", pci_address="0000:3b:00.0"
    )
    reservations.reserve(
        interface_id=nic.pk,
        team=team,
        user=user,
        purpose="DPDK trial",
        expires_at=timezone.now() + timedelta(days=3),
    )
    return nic


@pytest.mark.parametrize("start", ["interface", "team"])
def test_release_asks_for_confirmation_first(
    page: Page, live_server, held_nic, artifacts_dir, start
):
    path = f"/interfaces/{held_nic.pk}/" if start == "interface" else "/team/"
    log_in(page, live_server, next_path=path)
    release = page.get_by_test_id("release-form").get_by_role("button", name="Release")
    asked = []

    def say(answer: bool):
        def handle(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if answer else dialog.dismiss()

        return handle

    page.once("dialog", say(False))
    release.click()
    page.wait_for_timeout(500)
    assert asked and "worker-1/ens1f0" in asked[0] and "platform" in asked[0]
    assert Reservation.objects.get(interface=held_nic).active  # "Cancel" changed nothing

    page.once("dialog", say(True))
    release.click()
    expect(page.locator(".messages")).to_contain_text("is released")
    assert not Reservation.objects.get(interface=held_nic).active
    held_nic.refresh_from_db()
    assert held_nic.state != OwnershipState.RESERVED
    page.screenshot(path=artifacts_dir / f"released-from-{start}.png", full_page=True)


def test_apply_shows_progress_while_the_request_runs(page: Page, live_server, settings):
    cluster = make_cluster(name="progress")
    settings.CLUSTER_NAME = cluster.name
    settings.KUBECONFIG = "/nonexistent/kubeconfig"  # the apply fails, after the wait
    nic = make_interface(make_node(cluster=cluster, name="worker-1"), name="ens1f0")
    platform = make_team("platform")
    TeamNamespace.objects.create(team=platform, pattern="default")  # where it may apply
    make_user("alice", teams=[platform])
    log_in(page, live_server, next_path=f"/nads/new/?interface={nic.pk}")
    expect(page.get_by_test_id("nad-yaml")).to_contain_text("name: worker-1-ens1f0")
    progress = page.get_by_test_id("apply-progress")
    apply = page.get_by_test_id("apply")
    expect(progress).to_have_css("opacity", "0")

    # Hold the apply request until the page has been looked at.
    held = []
    page.route("**/nads/apply/", lambda route: held.append(route))
    apply.click()
    expect(progress).to_have_css("opacity", "1")
    expect(progress).to_contain_text("Applying to the cluster")
    expect(apply).to_be_disabled()
    assert len(held) == 1
    held[0].continue_()

    expect(page.get_by_test_id("apply-errors")).to_be_visible()
    expect(progress).to_have_css("opacity", "0")
    expect(apply).to_be_enabled()
