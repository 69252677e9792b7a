"""What the lab kubelet does on the real API server as kubelet and kube-scheduler would: binding by
nodeSelector / node affinity, FailedScheduling, sandbox retry with back-off, graceful deletion."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.lab


def host_device(device: str, name: str) -> dict:
    return {"cniVersion": "0.3.1", "name": name, "type": "host-device", "device": device}


def reasons(lab, name: str) -> dict[str, dict]:
    return {e["reason"]: e for e in lab.pod_events("default", name)}


def test_a_pod_without_a_node_is_bound_by_required_node_affinity(clean_lab):
    affinity = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-c"]}
                    ]}
                ]
            }
        }
    }  # fmt: skip
    pod = clean_lab.create_pod("default", "placed", None, affinity=affinity)
    assert pod["spec"]["nodeName"] == "node-c" and pod["status"]["phase"] == "Running"
    scheduled = reasons(clean_lab, "placed")["Scheduled"]
    assert scheduled["message"] == "Successfully assigned default/placed to node-c"
    assert scheduled["source"]["component"] == "default-scheduler"


def test_a_pod_no_node_matches_stays_pending_with_failed_scheduling(clean_lab):
    pod = clean_lab.create_pod("default", "nowhere", None, node_selector={"rack": "r9"})
    assert "nodeName" not in pod["spec"]
    event = reasons(clean_lab, "nowhere")["FailedScheduling"]
    assert event["type"] == "Warning"
    assert event["message"].startswith(
        "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    )
    fresh = clean_lab.get_pod("default", "nowhere")
    [condition] = fresh["status"]["conditions"]
    assert (condition["type"], condition["status"], condition["reason"]) == (
        "PodScheduled", "False", "Unschedulable"
    )  # fmt: skip


@pytest.mark.slow
def test_a_failed_sandbox_is_retried_with_back_off_until_it_works(clean_lab):
    pod = clean_lab.create_pod("default", "early", "node-b", "late-nad")
    assert pod["status"]["phase"] == "Pending"
    first = reasons(clean_lab, "early")
    assert first["NoNetworkFound"]["source"]["component"] == "multus"
    assert first["FailedCreatePodSandBox"]["count"] == 1
    clean_lab.create_nad("default", "late-nad", host_device("eth2", "late-nad"))

    deadline = time.monotonic() + 30  # the first back-off is 10 s, as kubelet's
    while time.monotonic() < deadline:
        pod = clean_lab.get_pod("default", "early")
        if pod["status"].get("phase") == "Running":
            break
        time.sleep(0.2)
    assert pod["status"]["phase"] == "Running"
    assert "eth2" not in clean_lab.link_names("node-b")


def test_deletion_is_graceful_the_kubelet_stops_tears_down_and_confirms(clean_lab):
    clean_lab.create_nad("default", "hd-eth3", host_device("eth3", "hd-eth3"))
    pod = clean_lab.create_pod("default", "leaving", "node-a", "hd-eth3")
    assert pod["status"]["phase"] == "Running"
    uid = pod["metadata"]["uid"]
    clean_lab.core.delete_namespaced_pod("leaving", "default")
    terminating = clean_lab.get_pod("default", "leaving")
    # The API server only marks it: the pod stays until the kubelet confirms.
    assert terminating is None or terminating["metadata"]["deletionTimestamp"]
    clean_lab.delete_pod("default", "leaving")  # waits until it is gone
    killing = [
        e for e in clean_lab._raw(clean_lab.core.list_namespaced_event, "default")["items"]
        if e["involvedObject"]["uid"] == uid and e["reason"] == "Killing"
    ]  # fmt: skip
    assert killing and killing[0]["message"] == "Stopping container main"
    assert "eth3" in clean_lab.link_names("node-a")  # DEL gave it back
