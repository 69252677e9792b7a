"""Pods with Multus annotations in the lab: the real host-device plugin moves real links."""

from __future__ import annotations

import json

import pytest

from lab.multus import NETWORK_STATUS_ANNOTATION

pytestmark = pytest.mark.lab


def host_device(device: str, name: str = "hd") -> dict:
    return {"cniVersion": "0.3.1", "name": name, "type": "host-device", "device": device}


def link(lab, node: str, name: str) -> dict | None:
    return next((link for link in lab.links(node) if link["ifname"] == name), None)


def network_status(pod: dict) -> list[dict]:
    return json.loads(pod["metadata"]["annotations"][NETWORK_STATUS_ANNOTATION])


def sandbox_failures(lab, namespace: str, name: str) -> list[dict]:
    return [e for e in lab.pod_events(namespace, name) if e["reason"] == "FailedCreatePodSandBox"]


def test_it_records_file_exists_when_a_nad_asks_for_eth0(clean_lab):
    clean_lab.create_nad("default", "hd-eth0", host_device("eth0", "hd-eth0"))
    pod = clean_lab.create_pod("default", "wants-eth0", "node-b", "hd-eth0")
    assert pod["status"]["phase"] == "Pending"
    [event] = sandbox_failures(clean_lab, "default", "wants-eth0")
    assert event["type"] == "Warning"
    assert event["involvedObject"]["uid"] == pod["metadata"]["uid"]
    assert "failed to move link file exists" in event["message"]
    assert event["message"].startswith("Failed to create pod sandbox: rpc error: code = Unknown")
    assert f"[default/wants-eth0/{pod['metadata']['uid']}:hd-eth0]" in event["message"]
    # The node keeps its eth0: the kernel refused the move.
    assert link(clean_lab, "node-b", "eth0") is not None


def test_it_moves_a_free_nic_into_the_pod_as_net1_and_back_on_delete(clean_lab):
    mac = link(clean_lab, "node-a", "eth1")["address"]
    clean_lab.create_nad("default", "hd-eth1", host_device("eth1", "hd-eth1"))
    pod = clean_lab.create_pod("default", "gets-eth1", "node-a", "default/hd-eth1")
    assert pod["status"]["phase"] == "Running"
    assert link(clean_lab, "node-a", "eth1") is None
    inside = {lk["ifname"]: lk for lk in clean_lab.pod_links("default", "gets-eth1")}
    assert inside["net1"]["address"] == mac
    default, attached = network_status(pod)
    assert default["default"] is True and default["interface"] == "eth0"
    assert default["name"] == "k8s-pod-network"
    # As Multus writes it: no "ips" key for an attachment without addresses, no "default".
    assert attached == {"name": "default/hd-eth1", "interface": "net1", "mac": mac, "dns": {}}

    clean_lab.delete_pod("default", "gets-eth1")
    back = link(clean_lab, "node-a", "eth1")
    assert back is not None and back["address"] == mac


def test_it_uses_the_interface_name_from_the_json_form(clean_lab):
    clean_lab.create_nad("default", "hd-eth2", host_device("eth2", "hd-eth2"))
    pod = clean_lab.create_pod(
        "default", "json-form", "node-c",
        [{"name": "hd-eth2", "namespace": "default", "interface": "data0"}],
    )  # fmt: skip
    assert [s["interface"] for s in network_status(pod)] == ["eth0", "data0"]
    assert "data0" in {lk["ifname"] for lk in clean_lab.pod_links("default", "json-form")}


def test_it_undoes_earlier_attachments_when_a_later_one_fails(clean_lab):
    clean_lab.create_nad("default", "hd-eth3", host_device("eth3", "hd-eth3"))
    clean_lab.create_nad("default", "hd-gone", host_device("eth9", "hd-gone"))
    pod = clean_lab.create_pod("default", "half", "node-b", "hd-eth3, hd-gone")
    assert pod["status"]["phase"] == "Pending"
    [event] = sandbox_failures(clean_lab, "default", "half")
    assert 'error adding container to network "hd-gone"' in event["message"]
    assert "Link not found" in event["message"]
    assert link(clean_lab, "node-b", "eth3") is not None  # DEL gave it back


def test_it_reports_a_missing_nad_like_multus(clean_lab):
    pod = clean_lab.create_pod("default", "no-nad", "node-c", "nothere")
    assert pod["status"]["phase"] == "Pending"
    [event] = sandbox_failures(clean_lab, "default", "no-nad")
    assert "cannot find a network-attachment-definition (nothere)" in event["message"]


def test_a_crashed_pod_leaves_its_nic_missing_with_no_pod_claiming_it(clean_lab):
    mac = link(clean_lab, "node-a", "eth2")["address"]
    clean_lab.create_nad("default", "hd-eth2", host_device("eth2", "hd-eth2"))
    clean_lab.create_pod("default", "doomed", "node-a", "hd-eth2")
    clean_lab.crash_pod("default", "doomed")

    assert clean_lab.get_pod("default", "doomed") is None
    assert all(lk["address"] != mac for lk in clean_lab.links("node-a"))
    pods = clean_lab._raw(clean_lab.core.list_pod_for_all_namespaces)["items"]
    claimed = [
        s["mac"] for p in pods for s in json.loads(
            (p["metadata"].get("annotations") or {}).get(NETWORK_STATUS_ANNOTATION, "[]")
        )
    ]  # fmt: skip
    assert mac not in claimed
    # reset() puts a NIC of that name back for the next test
    assert "node-a/eth2: created again" in clean_lab.reset()
    assert link(clean_lab, "node-a", "eth2") is not None


def test_a_pod_on_a_node_outside_the_lab_is_left_alone(clean_lab):
    clean_lab.create_pod("default", "elsewhere", "node-z", "hd-eth1", wait=False)
    # The kubelet handles pod events in order: once a later pod runs, the first was seen.
    assert clean_lab.create_pod("default", "later", "node-c")["status"]["phase"] == "Running"
    pod = clean_lab.get_pod("default", "elsewhere")
    # Pending as the API server made it: no kubelet wrote a status or an Event for it.
    assert pod["status"]["phase"] == "Pending" and "podIP" not in pod["status"]
    assert clean_lab.pod_events("default", "elsewhere") == []
