"""/metrics: Prometheus text parsed back with prometheus_client's own parser and checked against
seeded rows and the sweep status written by polling.record_sweep."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from inventory.choices import IdentityKind, OwnershipState
from inventory.models import Cluster, Interface, Node, Reservation
from inventory.services import polling

pytestmark = [pytest.mark.urls("nicportal.urls_ops"), pytest.mark.django_db]


def scrape(client, **headers) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **headers)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def make_interface(node: Node, name: str, state: str) -> Interface:
    return Interface.objects.create(
        node=node,
        name=name,
        identity=f"{node.name}-{name}",
        identity_kind=IdentityKind.NAME,
        state=state,
    )


@pytest.fixture
def fleet():
    lab = Cluster.objects.create(name="lab")
    other = Cluster.objects.create(name="other")
    n1 = Node.objects.create(cluster=lab, name="n1", last_contact_at=timezone.now())
    n2 = Node.objects.create(cluster=lab, name="n2", stale=True, agent_error="timed out")
    Node.objects.create(cluster=lab, name="n3", agent_error="401 unauthorized")
    # Gone from the API: not counted as a node of the cluster any more.
    Node.objects.create(cluster=lab, name="gone", in_cluster=False, stale=True, agent_error="x")
    make_interface(n1, "eth0", OwnershipState.SYSTEM)
    make_interface(n1, "cali1", OwnershipState.CNI)
    make_interface(n1, "vxlan.calico", OwnershipState.CNI)
    free = make_interface(n1, "eth1", OwnershipState.FREE)
    make_interface(n1, "eth2", OwnershipState.FREE)
    reserved = make_interface(n2, "eth1", OwnershipState.RESERVED)
    make_interface(n2, "eth2", OwnershipState.UNKNOWN)
    team = Group.objects.create(name="radio")
    user = User.objects.create(username="ana")
    now = timezone.now()
    Reservation.objects.create(
        interface=reserved,
        team=team,
        created_by=user,
        purpose="test",
        expires_at=now + timedelta(days=1),
    )
    Reservation.objects.create(
        interface=free,
        team=team,
        created_by=user,
        purpose="done",
        expires_at=now + timedelta(days=1),
        released_at=now,
    )
    return lab, other


def test_it_counts_interfaces_by_state_with_zeros_for_every_state(client, fleet):
    samples = scrape(client)
    expected = {state: 0 for state in OwnershipState.values}
    expected.update(system=1, cni=2, free=2, reserved=1, unknown=1)
    for state, count in expected.items():
        assert value(samples, "nicportal_interfaces", cluster="lab", state=state) == count
        assert value(samples, "nicportal_interfaces", cluster="other", state=state) == 0


def test_it_counts_nodes_stale_nodes_and_agent_errors_of_nodes_in_the_cluster(client, fleet):
    samples = scrape(client)
    assert value(samples, "nicportal_nodes", cluster="lab") == 3
    assert value(samples, "nicportal_nodes_stale", cluster="lab") == 1
    assert value(samples, "nicportal_agent_errors", cluster="lab") == 2
    assert value(samples, "nicportal_nodes", cluster="other") == 0
    assert value(samples, "nicportal_reservations_active", cluster="lab") == 1


def test_it_counts_the_rogue_agents_of_nodes_in_the_cluster(client, fleet):
    rogue = {"pod": "zzz/evil-agent", "pod_ip": "10.0.0.1", "reason": "in namespace zzz"}
    Node.objects.filter(name="n1").update(rogue_agents=[rogue, {**rogue, "pod": "zzz/evil-2"}])
    Node.objects.filter(name="n2").update(rogue_agents=[rogue])
    Node.objects.filter(name="gone").update(rogue_agents=[rogue])  # gone: not counted
    samples = scrape(client)
    assert value(samples, "nicportal_rogue_agents", cluster="lab") == 3
    assert value(samples, "nicportal_rogue_agents", cluster="other") == 0


def test_it_counts_the_snapshot_contradictions_of_nodes_in_the_cluster(client, fleet):
    hidden = {"code": "internal_ip_on_no_nic", "severity": "warning", "message": "..."}
    apart = {"code": "internal_ip_apart_from_default_route", "severity": "info", "message": "."}
    Node.objects.filter(name="n1").update(findings=[hidden, apart])
    Node.objects.filter(name="n2").update(findings=[hidden])
    Node.objects.filter(name="gone").update(findings=[hidden])  # gone: not counted
    samples = scrape(client)
    metric = "nicportal_snapshot_contradictions"
    assert value(samples, metric, cluster="lab", code="internal_ip_on_no_nic") == 2
    assert value(samples, metric, cluster="lab", code="default_route_gone") == 0
    assert value(samples, metric, cluster="other", code="internal_ip_on_no_nic") == 0
    # Information is no contradiction: a node with two uplinks is not counted.
    assert not [key for key in samples if key[0] == metric and ("code", apart["code"]) in key[1]]


def test_it_exports_the_last_sweep_from_the_sweep_status(client, fleet):
    lab, _ = fleet
    report = polling.SweepReport(nodes=3, agents_ok=1, agents_failed=2, duration=1.25)
    report.stats.created, report.stats.history = 5, 2  # rows_written = 7
    polling.record_sweep(lab, report)
    at = polling.sweep_status(lab)["at"]
    samples = scrape(client)
    assert value(samples, "nicportal_sweep_duration_seconds", cluster="lab") == 1.25
    assert value(samples, "nicportal_agents_answering", cluster="lab") == 1
    assert value(samples, "nicportal_agents_failed", cluster="lab") == 2
    assert value(samples, "nicportal_sweep_rows_written", cluster="lab") == 7
    assert value(samples, "nicportal_last_sweep_ok", cluster="lab") == 1
    assert value(samples, "nicportal_last_sweep_timestamp_seconds", cluster="lab") == (
        pytest.approx(datetime.fromisoformat(at).timestamp())
    )
    # No sweep yet for "other": no made-up timestamp.
    assert ("nicportal_last_sweep_timestamp_seconds", (("cluster", "other"),)) not in samples


def test_a_failed_sweep_keeps_the_last_successful_timestamp(client, fleet):
    lab, _ = fleet
    ok_at = timezone.now() - timedelta(minutes=10)
    Cluster.objects.filter(pk=lab.pk).update(last_sweep_ok_at=ok_at)
    lab.refresh_from_db()
    polling.record_sweep(lab, polling.SweepReport(cluster_error="API down"))
    samples = scrape(client)
    assert value(samples, "nicportal_last_sweep_ok", cluster="lab") == 0
    assert value(samples, "nicportal_last_sweep_timestamp_seconds", cluster="lab") == (
        pytest.approx(ok_at.timestamp())
    )


def test_each_scrape_reads_current_rows(client, fleet):
    lab, _ = fleet
    assert value(scrape(client), "nicportal_interfaces", cluster="lab", state="free") == 2
    Interface.objects.filter(node__cluster=lab, state=OwnershipState.FREE).update(
        state=OwnershipState.POD
    )
    samples = scrape(client)
    assert value(samples, "nicportal_interfaces", cluster="lab", state="free") == 0
    assert value(samples, "nicportal_interfaces", cluster="lab", state="pod") == 2


def test_it_requires_the_bearer_token_when_one_is_set(client, fleet, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    response = client.get("/metrics")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/metrics", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 401
    samples = scrape(client, HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert value(samples, "nicportal_nodes", cluster="lab") == 3


def test_it_is_open_when_no_token_is_set(client, fleet, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200
