"""The reservation request form in Debian's Chromium: the live "N match" count follows the
constraints as they are typed, a request that cannot be met says which constraint emptied the
set, and a request that can is granted with its NICs, NADs and pod placement."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from inventory.models import Reservation, ReservationRequest
from tests.api.builders import make_free_interface, make_node
from tests.browser.pages import log_in
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CNI = {"host_device": {"path": "/opt/cni/bin/host-device", "version": "1.1.1",
                       "supported_versions": ["0.3.1", "0.4.0", "1.0.0"]}}  # fmt: skip


@pytest.fixture
def fleet(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")  # annotation publishing just logs
    a = make_node("gpu-a", labels={"rack": "r12"}, cni=CNI)
    b = make_node("gpu-b", labels={"rack": "r12"}, cni=CNI)
    c = make_node("cpu-c", labels={"rack": "r7"}, cni=CNI)
    for node, speed in ((a, 25000), (a, 25000), (b, 25000), (c, 10000), (c, 10000)):
        make_free_interface(node, f"ens{node.interfaces.count()}f0", speed_mbps=speed)
    make_user("alice", teams=[make_team("ml")])


def test_the_live_count_follows_the_form_and_a_request_is_granted(
    page: Page, live_server, fleet, artifacts_dir
):
    log_in(page, live_server, next_path="/requests/")
    page.get_by_test_id("new-request").click()
    expect(page.get_by_role("heading", name="Request NICs")).to_be_visible()
    count = page.get_by_test_id("match-count")
    expect(count).to_have_text("5 match")

    page.fill("#id_min_speed_mbps", "25000")
    expect(count).to_have_text("3 match")
    page.fill("#id_label_selector", "rack=r7")
    expect(count).to_have_text("0 match")
    expect(page.get_by_test_id("match-explanation")).to_contain_text(
        "speed ≥ 25000 Mb/s left 0 of 2; closest: cpu-c/ens0f0 (speed 10000 Mb/s)"
    )
    page.screenshot(path=artifacts_dir / "request-nothing-matches.png", full_page=True)

    page.fill("#id_label_selector", "rack=r12")
    page.fill("#id_count", "2")
    page.select_option("#id_placement", "one_node")
    expect(count).to_have_text("3 match")
    expect(page.get_by_test_id("match-ok")).to_contain_text("gpu-a/ens0f0, gpu-a/ens1f0")
    page.fill("#id_purpose", "training run")
    page.fill("#id_nad_name", "fast")
    page.get_by_test_id("submit-request").click()

    expect(page.get_by_test_id("outcome")).to_have_text("granted")
    expect(page.get_by_test_id("granted-nics")).to_contain_text("gpu-a")
    expect(page.get_by_test_id("request-nad-yaml")).to_contain_text("name: fast-1")
    expect(page.get_by_test_id("request-nad-yaml")).to_contain_text("name: fast-2")
    expect(page.get_by_test_id("request-pod-snippet")).to_contain_text(
        "default/fast-1@net1, default/fast-2@net2"
    )
    page.screenshot(path=artifacts_dir / "request-granted.png", full_page=True)
    request = ReservationRequest.objects.get()
    assert request.outcome == "granted"
    assert sorted(
        Reservation.objects.filter(released_at__isnull=True).values_list(
            "interface__node__name", flat=True
        )
    ) == ["gpu-a", "gpu-a"]


def test_one_numa_placement_and_releasing_every_nic_of_the_request(
    page: Page, live_server, settings, tmp_path, artifacts_dir
):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")
    node = make_node("gpu-n", cni=CNI)
    for name, numa in (("ens0", 0), ("ens1", 1), ("ens2", 1)):
        make_free_interface(node, name, speed_mbps=25000, numa_node=numa)
    make_user("alice", teams=[make_team("ml")])
    log_in(page, live_server, next_path="/requests/new/")
    count = page.get_by_test_id("match-count")
    expect(count).to_have_text("3 match")
    page.fill("#id_count", "2")
    page.select_option("#id_placement", "one_numa")
    expect(page.get_by_test_id("match-ok")).to_contain_text("gpu-n/ens1, gpu-n/ens2")
    expect(page.get_by_test_id("match-steps")).to_contain_text("2 on one NUMA node")
    page.fill("#id_count", "3")
    expect(page.get_by_test_id("match-explanation")).to_contain_text(
        "3 on one NUMA node: 3 match but no NUMA node of one node has 3 "
        "(the most on one NUMA node: 2 on gpu-n NUMA node 1)"
    )
    page.fill("#id_count", "2")
    expect(page.get_by_test_id("match-ok")).to_be_visible()
    page.fill("#id_purpose", "numa run")
    page.get_by_test_id("submit-request").click()
    expect(page.get_by_test_id("outcome")).to_have_text("granted")

    asked = []

    def answer(accept: bool):
        def handle(dialog) -> None:
            asked.append(dialog.message)
            dialog.accept() if accept else dialog.dismiss()

        return handle

    request = ReservationRequest.objects.get()
    page.once("dialog", answer(False))  # dismissed: nothing happens
    page.get_by_role("button", name="Release all 2 NICs").click()
    expect(page.get_by_role("button", name="Release all 2 NICs")).to_be_visible()
    assert Reservation.objects.filter(released_at__isnull=True).count() == 2
    page.once("dialog", answer(True))
    page.get_by_role("button", name="Release all 2 NICs").click()
    expect(page.get_by_text("Every NIC of request")).to_be_visible()
    expect(page.get_by_role("button", name="Release all 2 NICs")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "request-released.png", full_page=True)
    assert not Reservation.objects.filter(released_at__isnull=True).exists()
    assert Reservation.objects.count() == 2
    question = (
        f"Release all 2 NICs team ml holds through request {request.pk}? "
        "They become free for anyone to take."
    )
    assert asked == [question, question]
