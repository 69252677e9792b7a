"""Every page of the portal in Debian's Chromium, against the lab with a reservation, an
applied NAD, a pod holding a NIC and a pod that failed: each page answers without an error on
any request it makes (the favicon included), and its screenshot goes to the artifacts folder
(`page-<name>.png`)."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import Page, expect

from inventory.models import Interface, NetworkAttachment, Reservation
from inventory.services import nads, polling, reservations

pytestmark = [
    pytest.mark.browser,
    pytest.mark.lab,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]


@pytest.fixture
def busy_lab(lab_portal):
    call_command("seeddemo", stdout=io.StringIO())
    from django.contrib.auth import get_user_model

    demo = get_user_model().objects.get(username="demo")
    platform = Group.objects.get(name="platform")
    held = Interface.objects.get(node__name="node-b", name="eth2")
    reservations.reserve(
        interface_id=held.pk,
        team=platform,
        user=demo,
        purpose="DPDK trial",
        expires_at=timezone.now() + timedelta(days=5),
    )
    eth1 = Interface.objects.get(node__name="node-c", name="eth1")
    nads.apply(
        user=demo,
        team=platform,
        namespace="default",
        name="fast-net",
        interface_ids=[eth1.pk],
    )
    lab_portal.create_pod("default", "db-0", "node-c", "default/fast-net@net1")
    lab_portal.create_nad(
        "default", "wrong-nic", {"cniVersion": "0.3.1", "name": "wrong-nic",
                                 "type": "host-device", "device": "eth9"},
    )  # fmt: skip
    lab_portal.create_pod("default", "stuck-0", "node-b", "default/wrong-nic@net1")
    polling.sweep_inline(workers=4)
    return {"held": held, "in_pod": eth1}


def test_every_page_answers_and_is_photographed(page: Page, live_server, busy_lab, artifacts_dir):
    failures: list[str] = []
    page.on(
        "response",
        lambda r: failures.append(f"{r.status} {r.url}") if r.status >= 400 else None,
    )
    page.set_viewport_size({"width": 1440, "height": 900})
    page.goto(f"{live_server.url}/accounts/login/")
    page.screenshot(path=artifacts_dir / "page-login.png")
    page.fill("#id_username", "demo")
    page.fill("#id_password", "demo")
    page.click("button[type=submit]")
    expect(page.get_by_role("heading", name="Fleet")).to_be_visible()

    held, in_pod = busy_lab["held"], busy_lab["in_pod"]
    reservation = Reservation.objects.get(interface=held, released_at__isnull=True)
    nad = NetworkAttachment.objects.get(name="fast-net")
    pages = {
        "fleet": ("/", "Fleet"),
        "node": ("/nodes/node-c/", "node-c"),
        "node-a": ("/nodes/node-a/", "node-a"),
        "interface": (f"/interfaces/{held.pk}/", "eth2"),
        "interface-in-pod": (f"/interfaces/{in_pod.pk}/", in_pod.name),
        "reserve": (
            f"/interfaces/{Interface.objects.get(node__name='node-a', name='eth3').pk}/reserve/",
            "Reserve",
        ),  # fmt: skip
        "extend": (f"/reservations/{reservation.pk}/extend/", "Extend"),
        "team": ("/team/", None),
        "nads": ("/nads/", None),
        "nad-builder": (f"/nads/new/?interface={held.pk}", "Build a NAD"),
        "nad-detail": (f"/nads/{nad.pk}/", "default/fast-net"),
        "nad-lint": ("/nads/lint/", None),
        "pods": ("/pods/", None),
        "pod-diagnosis": ("/pods/default/stuck-0/diagnosis/", None),
        "stranded": ("/stranded/", None),
        "tokens": ("/tokens/", "API tokens"),
        "requests": ("/requests/", "Reservation requests"),
        "request-new": ("/requests/new/", "Request NICs"),
        "admin": ("/admin/", None),
        "api-docs": ("/api/docs/", None),
    }
    for name, (path, heading) in pages.items():
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, f"{path}: {response.status}"
        if heading:
            expect(page.get_by_role("heading", name=heading).first).to_be_visible()
        page.wait_for_load_state("networkidle")
        page.screenshot(path=artifacts_dir / f"page-{name}.png", full_page=True)

    response = page.goto(f"{live_server.url}/no/such/page/")
    assert response.status == 404
    expect(page.get_by_test_id("not-found")).to_be_visible()
    page.screenshot(path=artifacts_dir / "page-not-found.png", full_page=True)
    failures.remove(f"404 {live_server.url}/no/such/page/")
    assert failures == []
