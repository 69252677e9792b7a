"""Live "last seen" per node and NIC (from the contact time the sweep keeps in the cache; an
unchanged poll writes no row) and the last sweep's time and outcome in every page's header."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.models import Interface, Node
from inventory.services import polling
from inventory.sync import contact
from tests.factories import make_cluster, make_interface, make_node, make_team, make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client):
    client.force_login(make_user("alice", teams=[make_team("platform")]))
    return client


@pytest.fixture
def node(settings):
    cluster = make_cluster(name="lab")
    settings.CLUSTER_NAME = "lab"
    earlier = timezone.now() - timedelta(minutes=10)
    node = make_node(cluster=cluster, name="worker-1", last_contact_at=earlier)
    make_interface(node, name="ens1f0", last_seen_at=earlier)
    return node


def poll(client, url: str, version: str):
    return client.get(f"{url}?since={version}", HTTP_HX_REQUEST="true")


def version_of(response) -> str:
    return response.context["version"]


def test_an_unchanged_poll_advances_last_seen_on_the_node_and_interface_pages(logged_in, node):
    nic = Interface.objects.get(node=node)
    node_url = reverse("inventory:node", args=[node.name])
    nic_url = reverse("inventory:interface", args=[nic.pk])
    node_page, nic_page = logged_in.get(node_url), logged_in.get(nic_url)
    assert poll(logged_in, node_url, version_of(node_page)).status_code == 204
    assert poll(logged_in, nic_url, version_of(nic_page)).status_code == 204
    rows_before = list(Node.objects.values()), list(Interface.objects.values())

    now = timezone.now()
    stats = contact.note_not_modified(Node.objects.get(pk=node.pk), now=now)  # the agent said 304

    assert stats.rows_written == 0
    assert (list(Node.objects.values()), list(Interface.objects.values())) == rows_before
    fresh_node = poll(logged_in, node_url, version_of(node_page))
    assert fresh_node.status_code == 200
    stamp = now.isoformat(timespec="seconds").replace("+00:00", "")
    assert 'data-testid="last-contact"' in fresh_node.content.decode()
    assert stamp in fresh_node.content.decode()  # node's last contact and the NIC's last seen
    assert fresh_node.content.decode().count(stamp) >= 2
    fresh_nic = poll(logged_in, nic_url, version_of(nic_page))
    assert fresh_nic.status_code == 200 and stamp in fresh_nic.content.decode()


def test_a_vanished_nic_keeps_the_time_it_was_last_reported(logged_in, node):
    gone = make_interface(node, name="ens9", present=False)
    contact.note_not_modified(Node.objects.get(pk=node.pk), now=timezone.now())
    page = logged_in.get(reverse("inventory:interface", args=[gone.pk]))
    assert page.context["last_seen"] == Interface.objects.get(pk=gone.pk).last_seen_at


def test_the_header_shows_the_last_sweep_and_its_outcome(logged_in, node):
    page = logged_in.get("/").content.decode()
    assert "No sweep yet" in page

    polling.record_sweep(node.cluster, polling.SweepReport(nodes=1, agents_ok=1, duration=0.2))
    page = logged_in.get("/").content.decode()
    assert "Last sweep" in page and 'data-testid="sweep-outcome">ok<' in page

    polling.record_sweep(
        node.cluster,
        polling.SweepReport(nodes=3, agents_ok=2, agents_failed=1, duration=0.2),
    )
    assert "2/3 agents" in logged_in.get(reverse("inventory:sweep-status")).content.decode()

    polling.record_sweep(
        node.cluster, polling.SweepReport(cluster_error="<b>API down</b>: connection refused")
    )
    status = logged_in.get(reverse("inventory:sweep-status")).content.decode()
    assert ">failed<" in status
    assert "&lt;b&gt;API down&lt;/b&gt;" in status and "<b>API down" not in status


def test_the_sweep_status_needs_a_login(client):
    response = client.get(reverse("inventory:sweep-status"), HTTP_HX_REQUEST="true")
    assert response.status_code == 200 and "HX-Redirect" in response.headers
