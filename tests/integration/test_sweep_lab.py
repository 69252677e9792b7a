"""The inventory core against the lab: KMock's API over HTTP, one real agent per node reading a
network namespace, and the real host-device plugin moving NICs into pods."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.models import HistoryEntry, Interface, Node, PodAttachment
from inventory.services import polling

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]


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


def iface(node: str, name: str) -> Interface:
    return Interface.objects.get(node__name=node, name=name)


def writes(queries) -> list[str]:
    verbs = ("INSERT", "UPDATE", "DELETE")
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith(verbs)]


def test_a_sweep_fills_the_inventory_with_a_verdict_for_every_nic(portal):
    report = polling.sweep_inline(workers=4)

    assert report.cluster_error == ""
    assert report.nodes == len(portal.nodes)
    assert report.agents_ok == len(portal.nodes) and report.agents_failed == 0
    assert set(Node.objects.values_list("name", flat=True)) == {n.name for n in portal.nodes}
    uplink = iface("node-a", "eth0")
    assert (uplink.state, uplink.reason) == ("system", "carries the default route")
    assert iface("node-a", "eth1").state == "free"
    assert iface("node-a", "eth4").state == "enslaved"
    assert "br-ex" in iface("node-a", "eth4").reason
    assert iface("node-a", "br-ex").state == "virtual"
    assert iface("node-a", "vxlan.calico").state == "cni"
    assert iface("node-a", "eth5").state == "system"
    assert "10.1.0." in iface("node-a", "eth5").reason
    cali = Interface.objects.get(node__name="node-a", name__startswith="cali")
    assert (cali.state, cali.holder) == ("cni", "Calico")
    # lab nodes own no PCI devices: the machine's own NIC must not show up on every node
    assert not Interface.objects.filter(has_netdev=False).exists()
    node_a = Node.objects.get(name="node-a")
    assert node_a.cni["host_device"]["supported_versions"][-1] == "1.0.0"
    assert node_a.internal_ips == [portal.node("node-a").internal_ip]
    # every interface got a history row for its first verdict (unknown -> state)
    assert HistoryEntry.objects.filter(kind="ownership").count() == Interface.objects.count()


def test_a_second_sweep_with_nothing_changed_writes_zero_rows(portal):
    polling.sweep_inline(workers=4)
    before = {i.pk: (i.state, i.reason, i.facts_digest) for i in Interface.objects.all()}

    with CaptureQueriesContext(connection) as queries:
        report = polling.sweep_inline(workers=1)

    assert report.stats.rows_written == 0
    assert writes(queries.captured_queries) == []
    after = {i.pk: (i.state, i.reason, i.facts_digest) for i in Interface.objects.all()}
    assert after == before


def test_an_agent_that_stops_answering_leaves_its_nics_unknown_with_facts_intact(portal, settings):
    polling.sweep_inline(workers=4)
    facts = {i.pk: (i.name, i.mac, i.kind) for i in Interface.objects.filter(node__name="node-b")}
    Node.objects.filter(name="node-b").update(agent_url_override="http://127.0.0.1:9")
    settings.AGENT_STALE_AFTER = 0.0

    report = polling.sweep_inline(workers=4)

    assert report.agents_failed == 1
    node_b = Node.objects.get(name="node-b")
    assert node_b.stale and "127.0.0.1:9" in node_b.agent_error
    rows = Interface.objects.filter(node__name="node-b")
    assert {i.pk: (i.name, i.mac, i.kind) for i in rows} == facts
    assert {i.state for i in rows} == {"unknown"}
    assert all("has not answered" in i.reason for i in rows)
    assert Interface.objects.filter(node__name="node-a", state="unknown").count() == 0

    Node.objects.filter(name="node-b").update(agent_url_override="")
    polling.sweep_inline(workers=4)
    assert iface("node-b", "eth1").state == "free"
    assert not Node.objects.get(name="node-b").stale


def test_a_pod_holding_a_nic_turns_it_pod_naming_the_pod_and_the_nad(portal):
    polling.sweep_inline(workers=4)
    eth2 = iface("node-b", "eth2")
    portal.create_nad(
        "default",
        "fast-nic",
        {
            "cniVersion": "0.3.1",
            "name": "fast-nic",
            "type": "host-device",
            "hwaddr": eth2.mac,
        },
    )
    pod = portal.create_pod("default", "trainer-0", "node-b", "default/fast-nic@net1")
    assert pod["status"]["phase"] == "Running"

    polling.sweep_inline(workers=4)

    eth2.refresh_from_db()
    assert not eth2.present
    assert eth2.state == "pod"
    assert eth2.reason == "in pod default/trainer-0 as net1 via NAD default/fast-nic"
    assert eth2.holder == "pod default/trainer-0"
    attachment = PodAttachment.objects.get(pod_name="trainer-0")
    assert (attachment.status, attachment.interface_id) == ("attached", eth2.pk)

    portal.delete_pod("default", "trainer-0")
    polling.sweep_inline(workers=4)
    eth2.refresh_from_db()
    assert (eth2.present, eth2.state, eth2.name) == (True, "free", "eth2")
    states = list(eth2.history.order_by("at", "id").values_list("new_state", flat=True))
    assert states[-2:] == ["pod", "free"]


def test_a_nic_left_in_a_crashed_pod_namespace_is_missing_after_one_poll(portal):
    polling.sweep_inline(workers=4)
    portal.create_nad(
        "default",
        "crash-nic",
        {
            "cniVersion": "0.3.1",
            "name": "crash-nic",
            "type": "host-device",
            "device": "eth3",
        },
    )
    portal.create_pod("default", "doomed", "node-c", "default/crash-nic@net1")
    portal.crash_pod("default", "doomed")

    polling.sweep_inline(workers=4)

    eth3 = iface("node-c", "eth3")
    assert not eth3.present
    assert eth3.state == "missing"
    assert "no pod claims it" in eth3.reason


def test_the_sweep_lints_the_cluster_nads_against_the_inventory(portal):
    portal.create_nad(
        "default",
        "eth0-nic",
        {
            "cniVersion": "0.3.1",
            "name": "eth0-nic",
            "type": "host-device",
            "device": "eth0",
        },
    )
    portal.create_nad("default", "commented", '{"type": "host-device", # eth1\n "device": "eth1"}')

    polling.sweep_inline(workers=4)
    polling.sweep_inline(workers=4)  # the second sweep lints against the filled inventory

    from inventory.models import NetworkAttachment

    eth0 = NetworkAttachment.objects.get(name="eth0-nic")
    codes = {f["code"] for f in eth0.findings}
    assert "DEVICE_NOT_FREE" in codes or "EEXIST_RISK" in codes, eth0.findings
    commented = NetworkAttachment.objects.get(name="commented")
    assert any("comment" in f["message"] for f in commented.findings), commented.findings
