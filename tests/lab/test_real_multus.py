"""Real Multus v4.2.3 in the lab: the thin plugin built from its pinned module runs as each
node's CNI plugin, talks to the real API server itself (from inside the node's namespace) and
delegates to the node's real host-device. Nothing here is written by the lab on Multus' behalf:
the network-status annotation, the AddedInterface Events and the error text are Multus' own."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from django.test import Client
from django.urls import reverse

from lab import cni, components
from lab.multus import NETWORK_STATUS_ANNOTATION
from tests.factories import make_user

pytestmark = pytest.mark.lab

NS = "default"


def host_device(name: str, device: str) -> dict:
    return {"cniVersion": "0.3.1", "name": name, "type": "host-device", "device": device}


def link(lab, node: str, name: str) -> dict | None:
    return next((lk for lk in lab.links(node) if lk["ifname"] == name), None)


def node_cni(lab, node: str) -> cni.NodeCni:
    return cni.NodeCni(node, lab.node(node).netns, lab.state.directory / "cni" / node)


def status_writers(pod: dict) -> set[str]:
    """Who wrote pods/<name>/status with an Update (the API server's managedFields)."""
    return {
        entry["manager"]
        for entry in pod["metadata"].get("managedFields") or []
        if entry.get("subresource") == "status" and entry.get("operation") == "Update"
    }


def test_each_node_runs_the_built_multus_with_its_own_host_device(clean_lab):
    for node in ("node-a", "node-b", "node-c"):
        installed = node_cni(clean_lab, node)
        assert installed.multus.resolve() == components.binary("multus")
        assert (installed.bin_dir / "host-device").resolve() == Path(
            clean_lab.state.data["nodes"][["node-a", "node-b", "node-c"].index(node)][
                "host_device_path"
            ]
        ).resolve()
        conf = json.loads(installed.conf_path.read_text())
        assert (conf["type"], conf["name"]) == ("multus", "multus-cni-network")
        assert conf["delegates"][0]["name"] == "k8s-pod-network"
        # Multus' identity is its ServiceAccount, not the lab's admin.
        kubeconfig = installed.kubeconfig.read_text()
        assert clean_lab.state.data["tokens"]["admin"] not in kubeconfig
        assert oct(os.stat(installed.kubeconfig).st_mode & 0o777) == "0o600"


def test_multus_moves_eth1_in_and_writes_network_status_itself(clean_lab):
    lab = clean_lab
    mac = link(lab, "node-b", "eth1")["address"]
    lab.create_nad(NS, "eth1-net", host_device("eth1-net", "eth1"))
    pod = lab.create_pod(NS, "web", "node-b", "eth1-net")
    assert pod["status"]["phase"] == "Running"
    assert link(lab, "node-b", "eth1") is None
    inside = {lk["ifname"]: lk for lk in lab.pod_links(NS, "web")}
    assert inside["net1"]["address"] == mac and inside["net1"].get("ifalias") == "eth1"

    value = pod["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION]
    default, attached = json.loads(value)
    # The cluster network's eth0, with the address the runtime reports as the pod's IP.
    assert default == {
        "name": "k8s-pod-network",
        "interface": "eth0",
        "ips": [pod["status"]["podIP"]],
        "mac": inside["eth0"]["address"],
        "default": True,
        "dns": {},
    }
    # host-device gives no address: Multus leaves "ips" out (omitempty), and "default" too.
    assert attached == {"name": "default/eth1-net", "interface": "net1", "mac": mac, "dns": {}}
    # The NAD client marshals each entry indented by four spaces, as Multus writes it.
    assert value.startswith('[{\n    "name": "k8s-pod-network",')

    # The status was written by Multus' own client, not by the lab kubelet's.
    assert any(manager.startswith("multus") for manager in status_writers(pod)), pod["metadata"][
        "managedFields"
    ]
    added = [e for e in lab.pod_events(NS, "web") if e["reason"] == "AddedInterface"]
    assert {e["message"] for e in added} == {
        f"Add eth0 [{pod['status']['podIP']}/32] from k8s-pod-network",
        "Add net1 [] from default/eth1-net",
    }
    assert {e["source"]["component"] for e in added} == {"multus"}

    lab.delete_pod(NS, "web")
    back = link(lab, "node-b", "eth1")
    assert back is not None and back["address"] == mac
    # The cluster network gave the address back: host-local keeps no lease for it.
    leases = node_cni(lab, "node-b").directory / "ipam" / "k8s-pod-network"
    assert not (leases / pod["status"]["podIP"]).exists()


def test_a_nad_on_eth0_fails_with_multus_wrapping_host_devices_file_exists(clean_lab):
    lab = clean_lab
    lab.create_nad(NS, "macvlan-conf", host_device("macvlan-conf", "eth0"))
    pod = lab.create_pod(NS, "wants-eth0", "node-b", "macvlan-conf")
    assert pod["status"]["phase"] == "Pending"
    uid = pod["metadata"]["uid"]
    [event] = [
        e for e in lab.pod_events(NS, "wants-eth0") if e["reason"] == "FailedCreatePodSandBox"
    ]
    assert event["type"] == "Warning"
    assert (
        'plugin type="multus" name="multus-cni-network" failed (add):'
        f" [default/wants-eth0/{uid}:macvlan-conf]: error adding container to network"
        ' "macvlan-conf": failed to move link file exists'
    ) in event["message"]
    assert link(lab, "node-b", "eth0") is not None  # the kernel refused the move
    # Multus cleaned up after itself: the pod's eth0 address went back to host-local.
    leases = node_cni(lab, "node-b").directory / "ipam" / "k8s-pod-network"
    assert not [p for p in leases.glob("10.*")]
    log = node_cni(lab, "node-b").log_path.read_text()
    assert "failed to move link file exists" in log


@pytest.mark.django_db(transaction=True)
def test_the_portal_explains_multus_failure_on_the_diagnosis_page_and_api(lab_portal):
    lab = lab_portal
    lab.create_nad(NS, "macvlan-conf", host_device("macvlan-conf", "eth0"))
    pod = lab.create_pod(NS, "web-0", "node-b", "macvlan-conf")
    assert pod["status"]["phase"] == "Pending"

    client = Client()
    client.force_login(make_user("ops", staff=True))
    answer = client.get(f"/api/v1/pods/{NS}/web-0/diagnosis/")
    assert answer.status_code == 200
    result = answer.json()
    assert result["code"] == "EEXIST_COLLISION", result
    assert any("failed to move link file exists" in e["value"] for e in result["evidence"])
    assert "eth0 (made by the primary CNI)" in result["explanation"]
    page = client.get(reverse("inventory:pod-diagnosis", args=[NS, "web-0"])).content.decode()
    assert 'data-testid="code">EEXIST_COLLISION' in page
    assert "failed to move link file exists" in page
