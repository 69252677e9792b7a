"""Findings that tell the truth, against the lab: real pods, the real host-device plugin moving
NICs, real agents reading the node namespaces, and every verdict and finding from a real sweep.

- Calico's per-pod veths vanish with their pods: dropped, never stranded NICs.
- A NAD whose own pod holds its device is working, not in error.
- The reservation holder's own NAD gets no reservation warning, and its pod is no breach.
- Another team's pod on a reserved NIC is a breach, everywhere a person or a machine looks.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from inventory import health
from inventory.models import HistoryEntry, Interface, NetworkAttachment, TeamNamespace
from inventory.services import diagnosis, nads, polling, reservations
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

PODS = 12


def iface(node: str, name: str) -> Interface:
    return Interface.objects.get(node__name=node, name=name)


def host_device(name: str, **selector: str) -> dict:
    return {"cniVersion": "0.3.1", "name": name, "type": "host-device", **selector}


def findings_of(namespace: str, name: str) -> dict[str, dict]:
    row = NetworkAttachment.objects.get(namespace=namespace, name=name)
    return {f["code"]: f for f in row.findings}


def breaches_metric() -> float:
    for family in text_string_to_metric_families(health.render_metrics().decode()):
        for sample in family.samples:
            if sample.name == "nicportal_reservation_breaches" and sample.labels == {
                "cluster": "lab"
            }:
                return sample.value
    raise AssertionError("nicportal_reservation_breaches{cluster=lab} not exported")


def reserve(interface: Interface, team, user) -> None:
    reservations.reserve(
        interface_id=interface.pk,
        team=team,
        user=user,
        purpose="RDMA tests",
        expires_at=timezone.now() + timedelta(days=1),
    )


# --- Calico's veths ------------------------------------------------------------------------------


def test_calico_veths_of_deleted_pods_are_dropped_never_stranded(lab_portal):
    lab = lab_portal
    lasting = {i.pk for i in Interface.objects.filter(name__startswith="cali")}
    for n in range(PODS):
        pod = lab.create_pod("default", f"web-{n}", ("node-b", "node-c")[n % 2])
        assert pod["status"]["phase"] == "Running"
    polling.sweep_inline(workers=4)
    per_pod = Interface.objects.filter(name__startswith="cali").exclude(pk__in=lasting)
    assert per_pod.count() == PODS  # each pod's host-side veth, judged Calico's
    assert set(per_pod.values_list("state", "holder")) == {("cni", "Calico")}

    for n in range(PODS):
        lab.delete_pod("default", f"web-{n}")
    polling.sweep_inline(workers=4)

    assert set(Interface.objects.filter(name__startswith="cali").values_list("pk", flat=True)) == (
        lasting
    )
    assert not Interface.objects.filter(state="missing").exists()
    assert diagnosis.stranded() == []
    dropped = HistoryEntry.objects.filter(message__contains="dropped from the inventory")
    assert dropped.count() == PODS
    assert all(entry.message.startswith("cali") for entry in dropped)
    # A second sweep finds nothing left to drop or to call missing.
    report = polling.sweep_inline(workers=4)
    assert report.stats.rows_written == 0


# --- a NAD at work -------------------------------------------------------------------------------


def test_a_nad_whose_own_pod_holds_its_device_is_working_not_in_error(lab_portal):
    lab = lab_portal
    eth2 = iface("node-b", "eth2")
    lab.create_nad("default", "fast", host_device("fast", hwaddr=eth2.mac))
    lab.create_nad("default", "also-fast", host_device("also-fast", hwaddr=eth2.mac))
    pod = lab.create_pod("default", "trainer-0", "node-b", "default/fast@net1")
    assert pod["status"]["phase"] == "Running"

    polling.sweep_inline(workers=4)

    eth2.refresh_from_db()
    assert (eth2.state, eth2.holder, eth2.breach) == ("pod", "pod default/trainer-0", "")
    own = findings_of("default", "fast")
    assert [f for f in own.values() if f["severity"] == "error"] == []
    assert "DEVICE_IN_POD" not in own
    assert own["DEVICE_IN_USE"]["severity"] == "info"
    assert (
        "node-b/eth2 is in a pod through this NAD (pod default/trainer-0)"
        in (own["DEVICE_IN_USE"]["message"])
    )
    other = findings_of("default", "also-fast")
    assert other["DEVICE_IN_POD"]["severity"] == "warning"
    assert "through NAD default/fast" in other["DEVICE_IN_POD"]["message"]
    assert [f for f in other.values() if f["severity"] == "error"] == []

    client = Client()
    client.force_login(make_user("reader"))
    row = NetworkAttachment.objects.get(namespace="default", name="fast")
    page = client.get(reverse("inventory:nad-detail", args=[row.pk])).content.decode()
    assert 'data-code="DEVICE_IN_USE"' in page
    assert 'data-code="DEVICE_IN_POD"' not in page and 's-missing">error' not in page


# --- the reservation holder's NAD ----------------------------------------------------------------


def test_the_reservation_holders_nad_is_clean_and_its_pod_no_breach(lab_portal):
    lab = lab_portal
    lab.ensure_namespace("platform")
    platform = make_team("platform")
    TeamNamespace.objects.create(team=platform, pattern="platform")  # where pat may apply
    pat = make_user("pat", teams=[platform])
    eth2 = iface("node-b", "eth2")
    reserve(eth2, platform, pat)

    created = nads.apply(
        user=pat, team=platform, namespace="platform", name="fast", interface_ids=[eth2.pk]
    )
    assert [row.team for row in created] == [platform]
    polling.sweep_inline(workers=4)
    findings = findings_of("platform", "fast")
    assert "DEVICE_RESERVED" not in findings
    assert [f for f in findings.values() if f["severity"] in ("error", "warning")] == []
    assert findings["DEVICE_RESERVED_FOR_TEAM"]["severity"] == "info"

    pod = lab.create_pod("platform", "job-0", "node-b", "platform/fast@net1")
    assert pod["status"]["phase"] == "Running"
    polling.sweep_inline(workers=4)

    eth2.refresh_from_db()
    assert (eth2.state, eth2.breach) == ("pod", "")
    assert "reserved by team platform" in eth2.reason
    assert findings_of("platform", "fast")["DEVICE_IN_USE"]["severity"] == "info"
    assert diagnosis.diagnose(namespace="platform", name="job-0").code == "HEALTHY"
    assert breaches_metric() == 0


# --- the breach ----------------------------------------------------------------------------------


def test_another_teams_pod_on_a_reserved_nic_is_a_breach_everywhere(lab_portal):
    lab = lab_portal
    lab.ensure_namespace("ml")
    platform, ml = make_team("platform"), make_team("ml")
    pat = make_user("pat", teams=[platform])
    eth2 = iface("node-b", "eth2")
    reserve(eth2, platform, pat)
    # Team ml writes its own NAD by name and runs a pod with it: host-device takes node-b/eth2.
    lab.create_nad("ml", "grab", host_device("grab", device="eth2"))
    pod = lab.create_pod("ml", "trainer-0", "node-b", "ml/grab@net1")
    assert pod["status"]["phase"] == "Running"
    assert "eth2" not in lab.link_names("node-b")

    polling.sweep_inline(workers=4)

    eth2.refresh_from_db()
    assert eth2.state == "pod"
    assert eth2.breach == (
        "reserved by team platform, but in pod ml/trainer-0 via NAD ml/grab: namespace ml "
        "belongs to no team and NAD ml/grab was not applied through NICPortal for a team"
    )
    # Staff say whose namespace ml is: the verdict is judged again at once, no sweep needed.
    call_command("createteam", "ml", "--namespace", "ml")
    eth2.refresh_from_db()
    assert eth2.breach.endswith("via NAD ml/grab: namespace ml belongs to team ml")

    result = diagnosis.diagnose(namespace="ml", name="trainer-0")
    assert (result.code, result.severity) == ("RESERVATION_BREACH", "error")
    assert "namespace ml belongs to team ml" in result.explanation

    assert breaches_metric() == 1

    reader = make_user("reader", teams=[ml])
    client = Client()
    client.force_login(reader)
    interface_page = client.get(reverse("inventory:interface", args=[eth2.pk])).content.decode()
    assert 'data-testid="breach"' in interface_page and "Reservation breach" in interface_page
    node_page = client.get(reverse("inventory:node", args=["node-b"])).content.decode()
    assert 'data-testid="breaches"' in node_page and "namespace ml belongs to team ml" in node_page
    fleet = client.get(reverse("inventory:fleet"), {"breach": "true"}).content.decode()
    assert f'id="interface-{eth2.pk}"' in fleet and fleet.count('id="interface-') == 1
    assert f'data-testid="breach-{eth2.pk}"' in fleet
    diagnosis_page = client.get(
        reverse("inventory:pod-diagnosis", args=["ml", "trainer-0"])
    ).content.decode()
    assert 'data-testid="code">RESERVATION_BREACH' in diagnosis_page
    api = client.get("/api/v1/interfaces/", {"breach": "true"}).json()
    assert [(row["node"], row["name"]) for row in api["results"]] == [("node-b", "eth2")]
    assert api["results"][0]["breach"] == eth2.breach

    # The pod goes, the NIC comes back: the breach ends, and history says both.
    lab.delete_pod("ml", "trainer-0")
    polling.sweep_inline(workers=4)
    eth2.refresh_from_db()
    assert (eth2.state, eth2.breach) == ("reserved", "")
    assert breaches_metric() == 0
    messages = list(
        eth2.history.filter(kind="breach").order_by("at", "id").values_list("message", flat=True)
    )
    assert messages[0].startswith("eth2: reservation breach: reserved by team platform")
    assert messages[-1].startswith("eth2: reservation breach over")


# --- no suggestion contradicts another finding --------------------------------------------------


def test_a_pasted_nad_on_eth0_is_never_told_to_select_eth0_by_its_mac(lab_portal):
    manifest = (
        "apiVersion: k8s.cni.cncf.io/v1\n"
        "kind: NetworkAttachmentDefinition\n"
        "metadata: {name: uplink, namespace: default}\n"
        "spec:\n"
        '  config: \'{"cniVersion": "0.3.1", "name": "uplink", "type": "host-device", '
        '"device": "eth0"}\'\n'
    )
    findings = nads.validate_manifest(text=manifest)

    primary = [f for f in findings if f.code == "PRIMARY_NIC"]
    assert {f.message.split(" ", 1)[0] for f in primary} == {
        f"{node.name}/eth0" for node in lab_portal.nodes
    }
    uplink_macs = set(Interface.objects.filter(name="eth0").values_list("mac", flat=True))
    assert len(uplink_macs) == len(lab_portal.nodes)
    for finding in findings:
        assert not any(mac in finding.fix for mac in uplink_macs), finding
    risks = [f for f in findings if f.code == "EEXIST_RISK"]
    assert risks and all(
        "Point the NAD at a free interface instead of eth0" in f.fix for f in risks
    )
    assert all("upgrade" not in f.fix for f in risks)
