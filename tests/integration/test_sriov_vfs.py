"""SR-IOV VFs from sysfs fixture trees through the real agent code, the sync (PostgreSQL in CI),
the ownership verdicts, the NAD builder and its form: a netdev VF, a vfio VF, a VF in a pod,
a PF with VFs and one without (tests/fixtures/sysfs.py)."""

from __future__ import annotations

import csv
import hashlib
import json
from datetime import timedelta
from html import unescape

import pytest
import yaml
from django.utils import timezone
from rest_framework.test import APIClient

from inventory.choices import OwnershipState, RequestOutcome
from inventory.clients.cluster_objects import (
    ClusterListing,
    nad_from_json,
    node_from_json,
    pod_from_json,
)
from inventory.models import Interface, Node, PodAttachment, Reservation
from inventory.queries import sriov_role_q
from inventory.rules.capacity import Constraints
from inventory.services import capacity, nads
from inventory.sync.listing import apply_listing
from inventory.sync.snapshot import apply_snapshot, facts_digest, snapshot_facts
from inventory.sync.verdicts import refresh_node_ownership
from inventory.web.forms import usable_interfaces
from nodeagent.facts import assemble
from nodeagent.sysfs import Sysfs
from tests.factories import make_cluster, make_node, make_reservation, make_team, make_user
from tests.fixtures import sysfs as fx

pytestmark = pytest.mark.django_db

S = OwnershipState


@pytest.fixture
def sriov(db, settings, tmp_path):
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = ""
    settings.KUBECONFIG = "/nonexistent/kubeconfig"
    cluster = make_cluster(name="prod")
    node = make_node(cluster, name="sriov-0", internal_ips=["10.0.0.9"])
    root = fx.sriov_node(tmp_path / "sys")
    apply_snapshot(node, fx.sriov_node_snapshot(root))
    return node


def rows(node: Node) -> dict[str, Interface]:
    return {i.pci_address: i for i in Interface.objects.filter(node=node)}


def test_the_vfs_are_stored_under_their_pf_with_their_facts(sriov):
    found = rows(sriov)
    for address, index, driver, has_netdev in (
        (fx.NETDEV_VF, 0, "iavf", True),
        (fx.VFIO_VF, 1, "vfio-pci", False),
        (fx.POD_VF, 2, "iavf", False),
    ):
        vf = found[address]
        assert (vf.pf_pci_address, vf.pf, vf.vf_index) == (fx.PF, "ens3f0", index)
        assert (vf.driver, vf.has_netdev, vf.device_id) == (driver, has_netdev, "0x154c")
    pf = found[fx.PF]
    assert (pf.name, pf.sriov_total_vfs, pf.sriov_num_vfs, pf.pf_pci_address) == (
        "ens3f0",
        8,
        3,
        "",
    )


def test_each_vf_and_pf_gets_a_verdict_that_says_whether_host_device_can_take_it(sriov):
    found = rows(sriov)
    netdev_vf, vfio_vf, pod_vf = found[fx.NETDEV_VF], found[fx.VFIO_VF], found[fx.POD_VF]
    assert netdev_vf.state == S.FREE
    assert netdev_vf.reason.startswith("VF 0 of ens3f0 (driver iavf, 0000:3b:02.0)")
    assert "host-device moves its netdev into the pod" in netdev_vf.reason
    assert vfio_vf.state == S.FREE
    assert "VF 1 of ens3f0 bound to vfio-pci" in vfio_vf.reason
    assert "by pciBusID and moves nothing" in vfio_vf.reason
    assert pod_vf.state == S.MISSING  # no pod claims it yet
    assert found[fx.PF].state == S.ENSLAVED
    assert found[fx.PF].reason.startswith("SR-IOV PF with 3 VFs enabled: moving it would take")
    assert found[fx.IDLE_PF].state == S.FREE  # SR-IOV capable, no VFs enabled
    assert found[fx.UPLINK].state == S.SYSTEM


@pytest.fixture
def uplink_pf(db, settings, tmp_path):
    """The SR-IOV node whose PF ens3f0 carries the default route and the InternalIP."""
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = ""
    node = make_node(make_cluster(name="prod"), name="sriov-1", internal_ips=["10.0.0.9"])
    root = fx.sriov_node(tmp_path / "sys")
    apply_snapshot(node, fx.sriov_node_snapshot(root, "sriov-1", uplink=3))
    return node


def test_the_vfs_of_the_uplink_pf_are_free_and_the_pf_stays_system(uplink_pf):
    found = rows(uplink_pf)
    pf = found[fx.PF]
    assert (pf.state, pf.reason) == (S.SYSTEM, "carries the default route")
    for address in (fx.NETDEV_VF, fx.VFIO_VF):
        vf = found[address]
        assert vf.state == S.FREE, vf.reason
        assert vf.reason.endswith("; its PF ens3f0 stays with the node (carries the default route)")
    assert found[fx.UPLINK].state == S.FREE  # eno1 no longer carries anything
    offered = {i.pci_address for i in usable_interfaces(None)}
    assert {fx.NETDEV_VF, fx.VFIO_VF} <= offered and fx.PF not in offered


def test_the_builder_refuses_the_uplink_pf_and_points_at_its_vfs(uplink_pf):
    refused = render(rows(uplink_pf)[fx.PF])
    assert not refused.ok and not refused.nads
    (finding,) = [f for f in refused.errors if f.code == "PRIMARY_NIC"]
    assert "Pick one of its free VFs" in finding.fix and "leaves ens3f0 alone" in finding.fix
    taken = render(rows(uplink_pf)[fx.NETDEV_VF])
    assert taken.ok, taken.errors
    assert taken.nads[0].config["pciBusID"] == fx.NETDEV_VF


def test_the_node_page_says_the_uplink_pfs_vfs_can_go_to_pods(uplink_pf, client):
    client.force_login(make_user())
    html = unescape(client.get(f"/nodes/{uplink_pf.name}/").content.decode())
    role = html[html.index(f'data-testid="pf-role-{fx.PF}"') :]
    assert role.split("</div>")[0].endswith(
        "PF ens3f0 is the node's uplink and is never handed out; its VFs can be given to pods."
    )
    idle = html[html.index(f'data-testid="pf-role-{fx.IDLE_PF}"') :].split("</div>")[0]
    assert "PF ens3f1 has no VFs enabled" in idle


def listing(node: str, *, pods: list[dict], nad_configs: dict[str, dict]) -> ClusterListing:
    return ClusterListing(
        nodes=[
            node_from_json(
                {
                    "metadata": {"name": node},
                    "status": {
                        "addresses": [{"type": "InternalIP", "address": "10.0.0.9"}],
                        "conditions": [{"type": "Ready", "status": "True"}],
                    },
                }
            )
        ],
        pods=[pod_from_json(p) for p in pods],
        nads=[
            nad_from_json(
                {
                    "metadata": {"namespace": "dpdk", "name": name, "uid": f"uid-{name}"},
                    "spec": {"config": json.dumps(config)},
                }
            )
            for name, config in nad_configs.items()
        ],
        sandbox_failures=[],
        agent_endpoints={},
    )


def pod(name: str, node: str, status: list[dict]) -> dict:
    return {
        "metadata": {
            "namespace": "dpdk",
            "name": name,
            "uid": f"uid-{name}",
            "annotations": {
                "k8s.v1.cni.cncf.io/networks": ", ".join(s["name"] for s in status),
                "k8s.v1.cni.cncf.io/network-status": json.dumps(
                    [{"name": "k8s-pod-network", "interface": "eth0", "default": True}, *status]
                ),
            },
        },
        "spec": {"nodeName": node},
        "status": {"phase": "Running"},
    }


def test_a_vf_in_a_pod_is_claimed_by_its_nads_pci_bus_id_or_its_device_info(sriov):
    # host-device in DPDK mode reports no interface: the network-status entry has no MAC and
    # no device-info; the NAD's pciBusID names the VF. The netdev VF in the other pod was
    # handed out by a device plugin, whose device-info names it.
    pods = [
        pod("dpdk-0", "sriov-0", [{"name": "dpdk/vf1"}]),
        pod(
            "app-0",
            "sriov-0",
            [
                {
                    "name": "dpdk/pool",
                    "interface": "net1",
                    "mac": "ba:dc:0f:fe:e0:02",
                    "device-info": {
                        "type": "pci",
                        "version": "1.1.0",
                        "pci": {"pci-address": fx.POD_VF.upper()},
                    },
                }
            ],
        ),
    ]
    configs = {
        "vf1": {
            "cniVersion": "1.0.0",
            "name": "vf1",
            "type": "host-device",
            "pciBusID": fx.VFIO_VF,
        },
        "pool": {"cniVersion": "1.0.0", "name": "pool", "type": "host-device"},
    }
    apply_listing(sriov.cluster, listing("sriov-0", pods=pods, nad_configs=configs))
    found = rows(sriov)
    assert (found[fx.VFIO_VF].state, found[fx.VFIO_VF].holder) == (S.POD, "pod dpdk/dpdk-0")
    assert (found[fx.POD_VF].state, found[fx.POD_VF].holder) == (S.POD, "pod dpdk/app-0")
    assert "2 in pods" in found[fx.PF].reason
    attachments = {a.pod_name: a for a in PodAttachment.objects.all()}
    assert attachments["dpdk-0"].pci_address == fx.VFIO_VF
    assert attachments["dpdk-0"].interface_id == found[fx.VFIO_VF].pk
    assert attachments["app-0"].pci_address == fx.POD_VF


@pytest.mark.parametrize(("phase", "state"), [("Running", S.POD), ("Pending", S.FREE)])
def test_a_running_pod_holds_its_dpdk_nads_vf_though_multus_wrote_no_entry_for_it(
    sriov, phase, state
):
    # Real Multus (v4.2.3) writes a network-status entry only for a result with an interface
    # in the pod; host-device in DPDK mode returns none, so only the default entry is there.
    dpdk = pod("dpdk-0", "sriov-0", [])
    dpdk["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] = "dpdk/vf1"
    dpdk["status"]["phase"] = phase
    configs = {"vf1": {"name": "vf1", "type": "host-device", "pciBusID": fx.VFIO_VF}}
    apply_listing(sriov.cluster, listing("sriov-0", pods=[dpdk], nad_configs=configs))
    vf = rows(sriov)[fx.VFIO_VF]
    assert vf.state == state, vf.reason
    attachment = PodAttachment.objects.get()
    if phase == "Running":
        assert (attachment.status, attachment.pci_address) == ("attached", fx.VFIO_VF)
        assert vf.holder == "pod dpdk/dpdk-0"
    else:
        assert (attachment.status, attachment.pci_address) == ("pending", "")


def test_a_nad_with_a_resource_name_does_not_claim_its_pci_bus_id(sriov):
    configs = {"vf1": {"name": "vf1", "type": "host-device", "pciBusID": fx.VFIO_VF}}
    item = listing(
        "sriov-0", pods=[pod("dpdk-0", "sriov-0", [{"name": "dpdk/vf1"}])], nad_configs=configs
    )
    item.nads[0] = nad_from_json(
        {
            "metadata": {
                "namespace": "dpdk",
                "name": "vf1",
                "annotations": {"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov_dpdk"},
            },
            "spec": {"config": json.dumps(configs["vf1"])},
        }
    )
    apply_listing(sriov.cluster, item)
    assert rows(sriov)[fx.VFIO_VF].state == S.FREE
    assert PodAttachment.objects.get().pci_address == ""


def render(interface: Interface, **fields) -> nads.nad.BuildResult:
    user = make_user()
    return nads.render(
        user=user, namespace="dpdk", name="vf", interface_ids=[interface.pk], **fields
    )


def test_the_builder_takes_a_vfio_vf_by_pci_bus_id_and_says_nothing_moves(sriov):
    result = render(rows(sriov)[fx.VFIO_VF])
    assert result.ok, result.errors
    (rendered,) = result.nads
    assert rendered.config["type"] == "host-device"
    assert rendered.config["pciBusID"] == fx.VFIO_VF
    assert not {"device", "hwaddr", "kernelpath"} & set(rendered.config)
    codes = {f.code for f in result.findings}
    assert "USERSPACE_DPDK" in codes and "NO_NETDEV" not in codes


def test_the_builder_refuses_a_vfio_vf_by_name_or_mac(sriov):
    result = render(rows(sriov)[fx.VFIO_VF], selector="hwaddr")
    assert not result.ok and not result.nads
    assert any("no kernel interface for a hwaddr selector" in f.message for f in result.errors)


def test_the_builder_takes_a_netdev_vf_by_pci_bus_id_not_by_its_name(sriov):
    result = render(rows(sriov)[fx.NETDEV_VF])
    assert result.ok, result.errors
    assert result.nads[0].config["pciBusID"] == fx.NETDEV_VF
    assert "device" not in result.nads[0].config
    chosen = [f.message for f in result.findings if f.code == "SELECTOR_CHOSEN"]
    assert any("it is an SR-IOV VF" in m for m in chosen), chosen


def test_the_builder_refuses_a_pf_with_vfs(sriov):
    result = render(rows(sriov)[fx.PF])
    assert not result.ok and not result.nads
    (refusal,) = [f for f in result.errors if f.code == "PF_WITH_VFS"]
    assert "SR-IOV PF with 3 VFs enabled" in refusal.message
    assert "free VFs" in refusal.fix


def test_the_builder_takes_an_sriov_pf_without_vfs(sriov):
    result = render(rows(sriov)[fx.IDLE_PF])
    assert result.ok, result.errors


def test_the_builder_refuses_a_vf_in_a_pod(sriov):
    configs = {"vf1": {"name": "vf1", "type": "host-device", "pciBusID": fx.VFIO_VF}}
    pods = [pod("dpdk-0", "sriov-0", [{"name": "dpdk/vf1"}])]
    apply_listing(sriov.cluster, listing("sriov-0", pods=pods, nad_configs=configs))
    result = render(rows(sriov)[fx.VFIO_VF])
    assert [f.code for f in result.errors] == ["DEVICE_IN_POD"]


def test_the_form_offers_free_vfs_with_or_without_netdev_and_never_the_busy_pf(sriov):
    offered = {i.pci_address for i in usable_interfaces(None)}
    assert {fx.NETDEV_VF, fx.VFIO_VF, fx.IDLE_PF} <= offered
    assert not {fx.PF, fx.POD_VF, fx.UPLINK} & offered


def test_a_team_reserves_a_vfio_vf_and_its_form_offers_it(sriov):
    team = make_team("dpdk")
    vf = rows(sriov)[fx.VFIO_VF]
    make_reservation(vf, team)
    refresh_node_ownership(sriov)
    vf.refresh_from_db()
    assert vf.state == S.RESERVED
    assert vf.pk in {i.pk for i in usable_interfaces(team)}
    assert vf.pk not in {i.pk for i in usable_interfaces(None)}


def test_a_reserved_vfio_vf_is_named_by_its_pci_address_in_history(sriov):
    from inventory.models import HistoryEntry
    from inventory.services import reservations

    team = make_team("dpdk-history")
    user = make_user(teams=[team])
    vf = rows(sriov)[fx.VFIO_VF]
    assert vf.name == ""  # no netdev: bound to vfio-pci
    reservations.reserve(
        interface_id=vf.pk,
        team=team,
        user=user,
        purpose="DPDK",
        expires_at=timezone.now() + timedelta(days=1),
    )
    message = HistoryEntry.objects.filter(interface=vf).latest("id").message
    assert f"sriov-0/{fx.VFIO_VF}" in message and "sriov-0/ " not in message, message
    assert str(vf) == f"sriov-0/{fx.VFIO_VF}"


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_lists_vfs_with_their_pf_driver_and_what_host_device_does(sriov):
    client = api(make_user())
    answer = client.get("/api/v1/interfaces/", {"sriov": "vf", "node": "sriov-0"})
    assert answer.status_code == 200, answer.content
    vfs = {row["pci_address"]: row for row in answer.json()["results"]}
    assert set(vfs) == {fx.NETDEV_VF, fx.VFIO_VF, fx.POD_VF}
    vfio = vfs[fx.VFIO_VF]
    assert (vfio["sriov_role"], vfio["pf_pci_address"], vfio["pf"], vfio["vf_index"]) == (
        "vf",
        fx.PF,
        "ens3f0",
        1,
    )
    assert (vfio["driver"], vfio["has_netdev"], vfio["host_device_mode"]) == (
        "vfio-pci",
        False,
        "vfio",
    )
    assert vfs[fx.NETDEV_VF]["host_device_mode"] == "netdev"
    assert vfs[fx.POD_VF]["host_device_mode"] == "no-netdev"


def test_the_api_filters_pfs_vfs_and_the_vfs_of_one_pf(sriov):
    client = api(make_user())

    def addresses(**query) -> set[str]:
        answer = client.get("/api/v1/interfaces/", query)
        assert answer.status_code == 200, answer.content
        return {row["pci_address"] for row in answer.json()["results"]}

    assert addresses(sriov="pf") == {fx.PF, fx.IDLE_PF}
    assert addresses(sriov="none") == {fx.UPLINK}
    assert addresses(pf=fx.PF.upper(), state="free") == {fx.NETDEV_VF, fx.VFIO_VF}
    assert addresses(pf=fx.IDLE_PF) == set()


def test_the_api_refuses_an_unknown_sriov_role_with_a_400_naming_the_filter(sriov):
    answer = api(make_user()).get("/api/v1/interfaces/", {"sriov": "maybe"})
    assert answer.status_code == 400
    assert "sriov" in answer.json()


def test_the_node_page_groups_the_vfs_under_their_pf_with_what_host_device_does(sriov, client):
    client.force_login(make_user())
    page = client.get(f"/nodes/{sriov.name}/")
    assert page.status_code == 200
    html = page.content.decode()
    panel = html[html.index('data-testid="sriov"') :]
    panel = panel[: panel.index('data-testid="group-')]
    pf_at, idle_at = panel.index(f'data-testid="pf-{fx.PF}"'), panel.index(f"pf-{fx.IDLE_PF}")
    vf_rows = [panel.index(f"vf-mode-{address}") for address in (fx.NETDEV_VF, fx.VFIO_VF)]
    # Under their PF, by VF number, before the next PF (PFs by PCI address).
    assert pf_at < vf_rows[0] < vf_rows[1] < idle_at
    assert "3 of 8 VFs enabled" in panel and "0 of 8 VFs enabled" in panel
    assert "moves nothing (DPDK mode)" in panel
    assert "host-device moves its netdev into the pod" in panel
    assert f">{fx.VFIO_VF}</a>" in panel  # a vfio VF has no name: shown by its address
    # eno1 is the uplink here: ens3f0 is used by no one, kept out of pods for its VFs' sake.
    role = panel[panel.index(f'data-testid="pf-role-{fx.PF}"') :].split("</div>")[0]
    assert role.endswith(
        "PF ens3f0 is not handed out while its VFs are enabled; its VFs can be given to pods."
    )


def test_the_interface_page_of_a_vfio_vf_says_whose_vf_it_is(sriov, client):
    client.force_login(make_user())
    vf = rows(sriov)[fx.VFIO_VF]
    html = client.get(f"/interfaces/{vf.pk}/").content.decode()
    assert "VF 1 of" in html and "ens3f0" in html
    assert "moves nothing (DPDK mode)" in html


def test_the_nad_builder_form_lists_a_vfio_vf_with_its_pf_and_mode(sriov, client):
    client.force_login(make_user())
    vf = rows(sriov)[fx.VFIO_VF]
    html = client.get("/nads/new/").content.decode()
    assert f'data-testid="vf-{vf.pk}"' in html
    entry = html[html.index(f'data-testid="vf-{vf.pk}"') :]
    assert "VF 1 of" in entry[:400] and "vfio-pci" in entry[:400]
    # NICs first, then the PF's heading with its VFs under it by number.
    heading = html.index(f'data-testid="vfs-of-sriov-0-{fx.PF}"')
    netdev_vf = rows(sriov)[fx.NETDEV_VF]
    order = [html.index(f'data-testid="iface-{i.pk}"') for i in (netdev_vf, vf)]
    assert html.index(f'data-testid="iface-{rows(sriov)[fx.IDLE_PF].pk}"') < heading < order[0]
    assert order[0] < order[1]


def test_the_sql_role_filter_agrees_with_each_rows_role(sriov):
    interfaces = list(Interface.objects.filter(node=sriov))
    assert {i.sriov_role for i in interfaces} == {"pf", "vf", ""}
    for interface in interfaces:
        role = interface.sriov_role or "none"
        assert Interface.objects.filter(sriov_role_q(role), pk=interface.pk).exists(), role


# The facts a digest covered before the SR-IOV facts existed, in that order.
DIGEST_BEFORE_SRIOV = (
    "name", "ifindex", "altnames", "alias", "mac", "permanent_mac", "kind", "driver",
    "pci_address", "vendor_id", "device_id", "speed_mbps", "mtu", "operstate", "carrier",
    "numa_node", "sriov_total_vfs", "sriov_num_vfs", "master", "master_kind", "wireless",
    "addresses", "default_route_v4", "default_route_v6", "pf", "has_netdev",
)  # fmt: skip


def test_an_upgrade_rewrites_only_the_rows_that_gained_a_vf_fact(tmp_path):
    rows_of = snapshot_facts(fx.sriov_node_snapshot(fx.sriov_node(tmp_path / "sys")))
    for row in rows_of.values():
        before = json.dumps([row.get(f) for f in DIGEST_BEFORE_SRIOV], sort_keys=True, default=str)
        old = hashlib.blake2b(before.encode(), digest_size=16).hexdigest()
        # A stored row keeps its digest (a warm sweep writes nothing) unless it is a VF.
        assert (facts_digest(row) == old) is (row["pf_pci_address"] == ""), row["pci_address"]


def test_a_schema_valid_but_hostile_vf_is_stored_cut_to_its_columns(sriov, tmp_path):
    snapshot = fx.sriov_node_snapshot(fx.sriov_node(tmp_path / "other"))
    for function in snapshot["pci_functions"]:
        function["pf_name"] = "<script>" + "p" * 5000
        function["vf_index"] = 65535
    fx.validate(snapshot)
    apply_snapshot(sriov, snapshot)
    vf = rows(sriov)[fx.VFIO_VF]
    assert vf.vf_index == 65535 and vf.pf.startswith("<script>pp")
    assert len(vf.pf) == Interface._meta.get_field("pf").max_length
    client = APIClient()
    client.force_login(make_user())
    page = client.get(f"/nodes/{sriov.name}/")
    assert page.status_code == 200
    assert b"<script>ppp" not in page.content and b"&lt;script&gt;ppp" in page.content


def test_the_csv_export_names_each_vfs_pf_and_number(sriov):
    client = api(make_user())
    answer = client.get("/api/v1/interfaces/export/", {"sriov": "vf"})
    assert answer.status_code == 200
    lines = list(csv.reader(b"".join(answer.streaming_content).decode().splitlines()))
    header, body = lines[0], lines[1:]
    columns = [header.index(c) for c in ("pci_address", "sriov_role", "pf_pci_address", "vf_index")]
    assert sorted([row[i] for i in columns] for row in body) == [
        [fx.NETDEV_VF, "vf", fx.PF, "0"],
        [fx.VFIO_VF, "vf", fx.PF, "1"],
        [fx.POD_VF, "vf", fx.PF, "2"],
    ]


def test_a_netdev_vf_moved_by_a_pci_bus_id_nad_is_in_its_pod(sriov, tmp_path):
    # What the node looks like once host-device moved ens3f0v0 into a pod: its netdev is gone
    # from the node's namespace, the agent reports the VF by its PCI address only.
    root = fx.sriov_node(tmp_path / "moved")
    links = [link for link in fx.sriov_node_links() if link["name"] != "ens3f0v0"]
    snapshot = fx.sriov_node_snapshot(root)
    snapshot["links"], snapshot["pci_functions"] = assemble(links, [], {2}, set(), Sysfs(str(root)))
    fx.validate(snapshot)
    apply_snapshot(sriov, snapshot)
    assert rows(sriov)[fx.NETDEV_VF].state == S.MISSING  # until the pod is listed
    status = [{"name": "dpdk/vf0", "interface": "net1", "mac": "ba:dc:0f:fe:e0:00"}]
    configs = {"vf0": {"name": "vf0", "type": "host-device", "pciBusID": fx.NETDEV_VF}}
    apply_listing(
        sriov.cluster,
        listing("sriov-0", pods=[pod("app-0", "sriov-0", status)], nad_configs=configs),
    )
    vf = rows(sriov)[fx.NETDEV_VF]
    assert (vf.state, vf.reason) == (S.POD, "in pod dpdk/app-0 as net1 via NAD dpdk/vf0")
    assert vf.name == "ens3f0v0"  # the name it had on the host is kept


# -- reservation requests (services/capacity.py, the request form) ----------------------------

HTMX = {"HTTP_HX_REQUEST": "true"}


def request_form(**fields) -> dict[str, str]:
    data = {
        "count": "1",
        "nodes": "",
        "label_selector": "",
        "min_speed_mbps": "",
        "driver": "",
        "vendor_id": "",
        "device_id": "",
        "sriov": "",
        "vf": "",
        "numa_node": "",
        "placement": "any",
        "spread_nodes": "",
        "purpose": "dpdk test",
        "expires_at": (timezone.now() + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M"),
        "namespace": "dpdk",
        "nad_name": "",
    }
    data.update(fields)
    return data


def test_a_request_for_two_vfs_reserves_both_free_vfs_with_pci_bus_id_nads(sriov):
    team = make_team("dpdk")
    request = capacity.submit(
        user=make_user(teams=[team]),
        team=team,
        constraints=Constraints(count=2, vf=True, placement="one_node"),
        purpose="packet generator",
        expires_at=timezone.now() + timedelta(days=3),
        namespace="dpdk",
        nad_name="vfs",
    )
    assert request.outcome == RequestOutcome.GRANTED, request.explanation
    granted = {r.interface.pci_address for r in request.reservations.select_related("interface")}
    assert granted == {fx.NETDEV_VF, fx.VFIO_VF}
    configs = [json.loads(yaml.safe_load(n["yaml"])["spec"]["config"]) for n in request.nads]
    assert sorted(c["pciBusID"] for c in configs) == [fx.NETDEV_VF, fx.VFIO_VF]
    assert all(not {"device", "hwaddr"} & set(c) for c in configs)
    assert [r.interface.state for r in request.reservations.all()] == [S.RESERVED] * 2


def test_a_vf_request_that_cannot_be_met_names_the_vfs_in_its_closest(sriov):
    team = make_team("dpdk")
    request = capacity.submit(
        user=make_user(teams=[team]),
        team=team,
        constraints=Constraints(count=1, vf=True, numa_node=1),
        purpose="packet generator",
        expires_at=timezone.now() + timedelta(days=3),
    )
    assert request.outcome == RequestOutcome.REFUSED
    assert request.explanation.startswith("NUMA node 1 left 0 of 3")  # the three VFs
    assert f"sriov-0/{fx.VFIO_VF} (NUMA node 0)" in request.explanation
    assert not Reservation.objects.exists()


def test_the_request_form_counts_vfs_and_shows_their_pf(sriov, client):
    team = make_team("dpdk")
    client.force_login(make_user(teams=[team]))
    text = client.post("/requests/preview/", request_form(vf="yes", count="2"), **HTMX)
    text = text.content.decode()
    assert "<strong>2</strong> match" in text  # the free VFs; the VF in a pod is not free
    assert f'sriov-0/{fx.VFIO_VF}</span> <span class="muted small">(VF 1 of ens3f0)' in text
    assert "(VF 0 of ens3f0)" in text
    text = client.post("/requests/preview/", request_form(vf="no"), **HTMX).content.decode()
    assert "<strong>1</strong> match" in text  # ens3f1: the PF with no VFs enabled
    response = client.post("/requests/new/", request_form(vf="yes", count="2", nad_name="vfs"))
    assert response.status_code == 302, response.content.decode()[:2000]
    page = client.get(response["Location"]).content.decode()
    assert "granted" in page and f"&quot;pciBusID&quot;: &quot;{fx.VFIO_VF}&quot;" in page
    vfio = rows(sriov)[fx.VFIO_VF]
    cell = page[page.index(f'data-testid="granted-vf-{vfio.pk}"') :][:400]
    assert "VF 1 of" in cell and "ens3f0" in cell and "moves nothing" in cell
