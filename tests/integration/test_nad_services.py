"""The NAD workflows (inventory.services.nads): render and validate against the inventory in the
database, apply against the lab's Kubernetes API (KMock over HTTP) with the inventory a real
sweep filled."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from rest_framework.test import APIClient

from inventory.choices import HistoryKind, NadOrigin, OwnershipState
from inventory.clients.cluster import ClusterClient
from inventory.models import HistoryEntry, Interface, NetworkAttachment, TeamNamespace
from inventory.rules import nad
from inventory.services import nads, polling
from inventory.services.errors import Conflict
from tests.factories import (
    make_cluster,
    make_interface,
    make_node,
    make_reservation,
    make_team,
    make_user,
)

CNI = {
    "host_device": {
        "path": "/opt/cni/bin/host-device",
        "version": "1.1.1",
        "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
    }
}


@pytest.fixture
def inventory(db, settings):
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = ""
    # A cluster the tests never reach: a refused apply must not even try.
    settings.KUBECONFIG = "/nonexistent/kubeconfig"
    cluster = make_cluster(name="prod")
    node = make_node(cluster, name="worker-1", cni=CNI)
    other = make_node(cluster, name="worker-2", cni=CNI)
    blue, red = make_team("blue"), make_team("red")
    alice = make_user("alice", teams=[blue])
    TeamNamespace.objects.create(team=blue, pattern="team-blue")  # where alice may apply
    return {
        "cluster": cluster,
        "blue": blue,
        "red": red,
        "alice": alice,
        "free": make_interface(node, name="ens1f0", pci_address="0000:3b:00.0", driver="ice"),
        "free2": make_interface(other, name="ens1f0", pci_address="0000:3b:00.0", driver="ice"),
        "uplink": make_interface(
            node,
            name="eth0",
            state=OwnershipState.SYSTEM,
            reason="carries the default route",
            default_route_v4=True,
        ),
        "red_nic": make_reservation(
            make_interface(node, name="ens2f0", state=OwnershipState.RESERVED, holder="red"),
            red,
        ).interface,
        "blue_nic": make_reservation(
            make_interface(other, name="ens2f1", state=OwnershipState.RESERVED, holder="blue"),
            blue,
        ).interface,
    }


def nothing_written() -> bool:
    return (
        not NetworkAttachment.objects.exists()
        and not HistoryEntry.objects.filter(kind=HistoryKind.NAD_APPLY).exists()
    )


def test_render_builds_a_nad_for_a_free_nic_and_writes_nothing(inventory):
    result = nads.render(
        user=inventory["alice"],
        team=inventory["blue"],
        namespace="team-blue",
        name="fast",
        interface_ids=[inventory["free"].pk],
    )
    assert result.ok
    [rendered] = result.nads
    # worker-2 has an ens1f0 at the same PCI address (identical servers): selecting by name or
    # by PCI address would take worker-2's NIC from a pod that ran there; its MAC is this one's.
    assert rendered.config == {
        "cniVersion": "0.3.1",
        "name": "fast",
        "type": "host-device",
        "hwaddr": inventory["free"].mac,
    }
    chosen = [f.message for f in result.findings if f.code == "SELECTOR_CHOSEN"]
    assert 'worker-2 also has an interface named "ens1f0"' in chosen[0]
    assert rendered.nodes == ("worker-1",)
    assert "team-blue/fast@net1" in result.pod_snippet
    assert "worker-1" in result.pod_snippet
    assert nothing_written()


def test_render_selects_by_name_when_only_the_target_nodes_have_it(inventory):
    result = nads.render(
        user=inventory["alice"],
        namespace="team-blue",
        name="fast",
        interface_ids=[inventory["free"].pk, inventory["free2"].pk],
    )
    assert result.ok, result.findings
    [rendered] = result.nads
    assert rendered.config["device"] == "ens1f0"
    assert rendered.nodes == ("worker-1", "worker-2")


def test_build_request_carries_eth0_the_reservation_team_and_the_plugin(inventory):
    request = nads.build_request(
        namespace="team-blue",
        name="fast",
        interface_ids=[inventory["blue_nic"].pk],
        other_pod_interfaces=["net2"],
        ipam={"type": "static", "addresses": "10.1.0.5/24, 10.1.0.6/24"},
        team=inventory["blue"],
    )
    assert request.other_pod_interfaces == ("eth0", "net2")
    assert request.team == "blue"
    [device] = request.devices
    assert (device.node, device.name, device.reserved_team) == ("worker-2", "ens2f1", "blue")
    assert device.plugin == nad.PluginFacts("1.1.1", ("0.3.1", "0.4.0", "1.0.0"))
    assert request.ipam.addresses == ("10.1.0.5/24", "10.1.0.6/24")


def test_the_clusters_multus_version_overrides_the_setting(inventory, settings):
    settings.MULTUS_VERSION = "4.1"
    fields = {"namespace": "n", "name": "x", "interface_ids": [inventory["free"].pk]}
    assert nads.build_request(**fields).multus_version == "4.1"
    inventory["cluster"].multus_version = "3.9"
    inventory["cluster"].save()
    assert nads.build_request(**fields).multus_version == "3.9"
    # Multus 3.9 (MicroK8s) takes cniVersion 0.3.1 at most.
    result = nads.render(user=inventory["alice"], **fields)
    assert result.nads[0].config["cniVersion"] == "0.3.1"


def test_a_nic_reserved_by_the_users_team_can_be_used(inventory):
    result = nads.render(
        user=inventory["alice"],
        team=inventory["blue"],
        namespace="team-blue",
        name="mine",
        interface_ids=[inventory["blue_nic"].pk],
    )
    assert result.ok, result.errors


def test_it_refuses_a_nic_reserved_by_another_team_naming_the_team(inventory):
    fields = {
        "user": inventory["alice"],
        "team": inventory["blue"],
        "namespace": "team-blue",
        "name": "stolen",
        "interface_ids": [inventory["red_nic"].pk],
    }
    [refusal] = nads.render(**fields).errors
    assert refusal.code == "DEVICE_RESERVED"
    assert "reserved by team red" in refusal.message

    with pytest.raises(nads.NadRefused) as caught:
        nads.apply(**fields)
    assert [f.code for f in caught.value.findings if f.severity == "error"] == ["DEVICE_RESERVED"]
    assert "reserved by team red" in caught.value.message_dict["devices"][0]
    assert nothing_written()


def test_a_dry_run_refusal_writes_nothing_and_never_calls_the_cluster(inventory):
    # KUBECONFIG points nowhere: reaching the cluster would raise ClusterError, not NadRefused.
    with pytest.raises(nads.NadRefused) as caught:
        nads.apply(
            user=inventory["alice"],
            team=inventory["blue"],
            namespace="team-blue",
            name="uplink",
            interface_ids=[inventory["uplink"].pk],
        )
    assert "PRIMARY_NIC" in {f.code for f in caught.value.findings}
    assert isinstance(caught.value, ValidationError)
    assert "primary NIC" in " ".join(caught.value.messages)
    assert nothing_written()


def test_it_refuses_a_team_the_user_is_not_in(inventory):
    with pytest.raises(PermissionDenied, match="not a member of team red"):
        nads.render(
            user=inventory["alice"],
            team=inventory["red"],
            namespace="n",
            name="x",
            interface_ids=[inventory["free"].pk],
        )


def test_unknown_interfaces_and_ipam_fields_are_validation_errors(inventory):
    with pytest.raises(ValidationError) as caught:
        nads.render(user=inventory["alice"], namespace="n", name="x", interface_ids=[999999])
    assert "999999" in caught.value.message_dict["interface_ids"][0]
    with pytest.raises(ValidationError) as caught:
        nads.render(
            user=inventory["alice"],
            namespace="n",
            name="x",
            interface_ids=[inventory["free"].pk],
            ipam={"type": "static", "adresses": ["10.0.0.1/24"]},
        )
    assert "adresses" in caught.value.message_dict["ipam"][0]


def test_the_api_door_translates_its_fields_into_the_services_arguments(inventory):
    """The REST body's `interfaces` and `team` reach nads.render as `interface_ids` and the
    acting team; the service itself takes one shape only."""
    client = APIClient()
    client.force_authenticate(inventory["alice"])
    response = client.post(
        "/api/v1/nads/render/",
        {
            "namespace": "n",
            "name": "two",
            "interfaces": [inventory["free"].pk, inventory["free2"].pk],
            "pod_interface": "data0",
            "ipam": {"type": "whereabouts", "range": "10.9.0.0/24"},
        },
        format="json",
    )
    assert response.status_code == 200, response.content
    result = response.json()
    assert result["ok"], result["findings"]
    [rendered] = result["nads"]  # same name on both nodes: one device NAD, affinity for both
    assert rendered["nodes"] == ["worker-1", "worker-2"]
    assert rendered["config"]["ipam"]["type"] == "whereabouts"
    assert "n/two@data0" in result["pod_snippet"]


def test_validate_manifest_explains_a_comment_inside_the_config(inventory):
    text = (
        "apiVersion: k8s.cni.cncf.io/v1\n"
        "kind: NetworkAttachmentDefinition\n"
        "metadata: {name: hd, namespace: default}\n"
        "spec:\n"
        "  config: |\n"
        '    {"cniVersion": "0.3.1", "name": "hd", "type": "host-device",\n'
        "     # the second NIC\n"
        '     "device": "ens1f0"}\n'
    )
    [finding] = nads.validate_manifest(text=text)
    assert finding.code == "CONFIG_INVALID_JSON"
    assert "contains a comment (`# the second NIC`), and JSON has no comments" in finding.message


def test_validate_manifest_checks_the_device_against_the_inventory(inventory):
    config = {"cniVersion": "0.3.1", "name": "hd", "type": "host-device", "device": "eth0"}
    text = json.dumps(
        {
            "apiVersion": "k8s.cni.cncf.io/v1",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {"name": "hd", "namespace": "default"},
            "spec": {"config": json.dumps(config)},
        }
    )
    codes = {f.code for f in nads.validate_manifest(text=text)}
    assert "PRIMARY_NIC" in codes


# ------------------------------------------------------------------------ apply, on the lab


@pytest.fixture
def portal(lab, settings):
    lab.reset()
    settings.KUBECONFIG = str(lab.portal_kubeconfig)
    settings.AGENT_MASTER_KEY = lab.agent_master_key
    settings.CLUSTER_NAME = "lab"
    settings.AGENT_NAMESPACE = "nicportal"
    settings.MULTUS_VERSION = ""
    report = polling.sweep_inline(workers=4)
    assert report.cluster_error == ""
    yield lab
    lab.reset()


def lab_nic(node: str, name: str) -> Interface:
    return Interface.objects.select_related("node").get(node__name=node, name=name)


def lab_nad(lab, namespace: str, name: str) -> dict | None:
    with ClusterClient.from_settings() as client:
        try:
            info = client.get_nad(namespace, name)
        except Exception:  # noqa: BLE001 - NotFound is all we expect; anything else fails below
            return None
    return {"config": json.loads(info.config), "annotations": info.annotations}


@pytest.mark.lab
@pytest.mark.django_db(transaction=True)
def test_apply_creates_the_nad_stores_it_and_writes_history(portal):
    team = make_team("blue")
    user = make_user("alice", teams=[team])
    TeamNamespace.objects.create(team=team, pattern="default")  # where blue may apply
    nic = lab_nic("node-a", "eth1")

    [row] = nads.apply(
        user=user, team=team, namespace="default", name="fast", interface_ids=[nic.pk]
    )

    in_cluster = lab_nad(portal, "default", "fast")
    # Every lab node has an eth1: the NAD selects node-a's by its MAC, not by name.
    assert in_cluster["config"] == {
        "cniVersion": "0.3.1",
        "name": "fast",
        "type": "host-device",
        "hwaddr": nic.mac,
    }
    assert in_cluster["annotations"]["nicportal.io/nodes"] == "node-a"
    row.refresh_from_db()
    assert (row.namespace, row.name, row.origin, row.applied_by) == (
        "default",
        "fast",
        NadOrigin.PORTAL,
        user,
    )
    assert json.loads(row.config)["hwaddr"] == nic.mac and row.in_cluster
    assert row.team == team
    [entry] = HistoryEntry.objects.filter(kind=HistoryKind.NAD_APPLY)
    assert (entry.actor, entry.team, entry.interface, entry.node) == (user, team, nic, nic.node)
    assert entry.message == "alice applied NAD default/fast for team blue (node-a/eth1)"
    assert "name: fast" in entry.data["yaml"] and f'"hwaddr": "{nic.mac}"' in entry.data["yaml"]
    assert entry.data["network_attachment"] == row.pk


@pytest.mark.lab
@pytest.mark.django_db(transaction=True)
def test_apply_never_overwrites_a_nad_that_exists(portal):
    team = make_team("blue")
    user = make_user("alice", teams=[team])
    TeamNamespace.objects.create(team=team, pattern="default")  # where blue may apply
    theirs = {"cniVersion": "0.3.1", "name": "taken", "type": "host-device", "device": "eth3"}
    portal.create_nad("default", "taken", theirs)

    with pytest.raises(Conflict) as caught:
        nads.apply(
            user=user,
            team=team,
            namespace="default",
            name="taken",
            interface_ids=[lab_nic("node-a", "eth1").pk],
        )

    assert str(caught.value) == (
        "NAD default/taken already exists in the cluster: choose another name or delete it first."
    )
    assert lab_nad(portal, "default", "taken")["config"] == theirs
    assert nothing_written()


@pytest.mark.lab
@pytest.mark.django_db(transaction=True)
def test_when_a_later_nad_conflicts_the_ones_created_before_are_deleted(portal):
    team = make_team("blue")
    user = make_user("alice", teams=[team])
    TeamNamespace.objects.create(team=team, pattern="default")  # where blue may apply
    # hwaddr is node-specific: two nodes give fast-node-a and fast-node-b, created in order.
    portal.create_nad(
        "default", "fast-node-b", {"cniVersion": "0.3.1", "name": "fast-node-b",
                                   "type": "host-device", "device": "eth2"},
    )  # fmt: skip
    ids = [lab_nic("node-a", "eth1").pk, lab_nic("node-b", "eth1").pk]
    assert [n.name for n in nads.render(user=user, namespace="default", name="fast",
                                         interface_ids=ids, selector="hwaddr").nads] == [
        "fast-node-a", "fast-node-b"
    ]  # fmt: skip

    with pytest.raises(Conflict, match="default/fast-node-b already exists"):
        nads.apply(
            user=user,
            team=team,
            namespace="default",
            name="fast",
            interface_ids=ids,
            selector="hwaddr",
        )

    assert lab_nad(portal, "default", "fast-node-a") is None
    assert lab_nad(portal, "default", "fast-node-b")["config"]["device"] == "eth2"
    assert nothing_written()


# ------------------------------------------------------------- the pages over these services


def builder_data(*interfaces: Interface, **fields: str) -> dict:
    return {
        "interfaces": [i.pk for i in interfaces],
        "namespace": "team-blue",
        "name": "fast",
        "selector": "auto",
        "pod_interface": "net1",
        "cni_version": "auto",
        "ipam_type": "none",
        **fields,
    }


@pytest.fixture
def signed_in(inventory, client):
    client.force_login(inventory["alice"])
    return client


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/nads/"), ("get", "/nads/new/"), ("get", "/nads/lint/"),
     ("post", "/nads/preview/"), ("post", "/nads/apply/"), ("post", "/nads/lint/")],
)  # fmt: skip
def test_the_nad_pages_need_a_login(inventory, client, method, path):
    response = getattr(client, method)(path)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_post_without_the_csrf_token_is_refused(inventory):
    from django.test import Client

    client = Client(enforce_csrf_checks=True)
    client.force_login(inventory["alice"])
    response = client.post("/nads/apply/", builder_data(inventory["free"]))
    assert response.status_code == 403
    assert nothing_written()


def test_the_builder_offers_free_nics_and_the_teams_reserved_ones_only(inventory, signed_in):
    page = signed_in.get(f"/nads/new/?interface={inventory['free'].pk}").content.decode()
    for offered in ("free", "free2", "blue_nic"):
        assert f'data-testid="iface-{inventory[offered].pk}"' in page
    for refused in ("uplink", "red_nic"):
        assert f'data-testid="iface-{inventory[refused].pk}"' not in page
    assert (
        f'value="{inventory["free"].pk}" data-testid="iface-{inventory["free"].pk}" checked' in page
    )

    response = signed_in.post("/nads/preview/", builder_data(inventory["red_nic"]))
    assert "is not free (nor reserved by your team)" in response.content.decode()


def test_the_preview_shows_yaml_pod_snippet_and_findings_escaped(inventory, signed_in):
    response = signed_in.post(
        "/nads/preview/",
        builder_data(inventory["free"], name="<b>fast</b>"),
        HTTP_HX_REQUEST="true",
    )
    html = response.content.decode()
    assert response.status_code == 200
    assert "<b>fast</b>" not in html and "&lt;b&gt;fast&lt;/b&gt;" in html
    assert 'data-code="NAME_INVALID"' in html
    assert 'data-testid="no-nad"' in html

    html = signed_in.post("/nads/preview/", builder_data(inventory["free"])).content.decode()
    mac = inventory["free"].mac
    assert 'data-testid="nad-yaml"' in html and f"&quot;hwaddr&quot;: &quot;{mac}&quot;" in html
    assert "team-blue/fast@net1" in html
    assert '<span class="badge s-reserved">warning</span>' in html  # Multus version unknown


def test_the_yaml_downloads_as_a_file(inventory, signed_in):
    response = signed_in.get(
        "/nads/preview/", {**builder_data(inventory["free"]), "download": "yaml"}
    )
    assert response.status_code == 200
    assert response["Content-Type"] == "text/yaml; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="fast.yaml"'
    assert f'"hwaddr": "{inventory["free"].mac}"' in response.content.decode()
    refused = signed_in.get("/nads/preview/", builder_data(inventory["free"], name="Bad_Name"))
    assert refused.status_code == 400 and refused.content.startswith(b"No NAD: ")


def test_a_refused_apply_is_shown_on_the_form_and_writes_nothing(inventory, signed_in):
    response = signed_in.post(
        "/nads/apply/", builder_data(inventory["free"], name="Bad_Name"), HTTP_HX_REQUEST="true"
    )
    html = response.content.decode()
    assert response.status_code == 200 and "HX-Location" not in response
    assert 'data-testid="apply-errors"' in html and "Nothing was applied" in html
    assert '<span class="badge s-missing">error</span>' in html
    assert nothing_written()


def test_the_list_shows_every_nad_with_its_stored_findings_escaped(inventory, signed_in):
    NetworkAttachment.objects.create(
        cluster=inventory["cluster"],
        namespace="default",
        name="legacy",
        config="{}",
        findings=[{"code": "PRIMARY_NIC", "severity": "error", "field": "device",
                   "message": "<script>x</script>", "fix": ""}],
    )  # fmt: skip
    html = signed_in.get("/nads/").content.decode()
    assert "default/legacy" in html and ">PRIMARY_NIC<" in html
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html


def test_the_lint_page_explains_a_comment_in_the_config(inventory, signed_in):
    text = (
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
        "metadata: {name: hd}\nspec:\n  config: |\n"
        '    {"cniVersion": "0.3.1", "type": "host-device", # my NIC\n     "device": "x"}\n'
    )
    html = signed_in.post(
        "/nads/lint/", {"manifest": text}, HTTP_HX_REQUEST="true"
    ).content.decode()
    assert 'data-code="CONFIG_INVALID_JSON"' in html
    assert "it contains a comment (`# my NIC`), and JSON has no comments" in html
    assert "<html" not in html  # the fragment only


def test_apply_checks_the_namespace_before_anything_is_built(inventory):
    # alice's team blue has team-blue only: refused before the dry run (which would pass) and
    # before the cluster (which does not answer here), naming the rule.
    with pytest.raises(PermissionDenied) as caught:
        nads.apply(
            user=inventory["alice"],
            team=inventory["blue"],
            namespace="kube-system",
            name="fast",
            interface_ids=[inventory["free"].pk],
        )
    assert str(caught.value) == (
        "Team blue may not apply a NAD into namespace kube-system: team blue may apply into: "
        "team-blue."
    )
    assert nothing_written()
    # An empty namespace is the dry run's error, on its field.
    with pytest.raises(nads.NadRefused) as refused:
        nads.apply(
            user=inventory["alice"],
            team=inventory["blue"],
            namespace="",
            name="fast",
            interface_ids=[inventory["free"].pk],
        )
    assert "namespace" in refused.value.message_dict
