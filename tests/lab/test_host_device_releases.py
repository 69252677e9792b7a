"""The seed scenario on the real control plane, on three host-device releases side by side.

A lab of its own (one node per release: Debian's v1.1.1, v1.2.0 as MicroK8s 1.27-1.31 bundle
it, v1.6.2 as MicroK8s 1.33 does), each with the real Multus v4.2.3, plus a second v1.1.1 node
on the lab's Multus 3.9 stand-in (the module proxy serves no 3.9 source), for the older
`networks-status` annotation. The portal runs with its
ServiceAccount and the shipped RBAC, sweeps the lab, builds NADs, and kubectl applies them:

- `"device": "eth0"` fails on v1.2.0 with the plugin's own EEXIST error, seen as a pod Event
  and diagnosed, and the builder's version table says v1.2.0 has that bug;
- the same NAD on v1.6.2 does what that release does (it succeeds: the node's eth0 goes into
  the pod), and the table says v1.6.2 does not have the bug;
- the builder's eth1 NAD works, ADD and DEL, on all three releases through real Multus (and on
  the 3.9 stand-in).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
import yaml

from inventory.models import Interface, Node
from inventory.read import facts
from inventory.rules import nad
from inventory.services import diagnosis, nads, polling
from lab import control
from lab.handle import LabHandle
from lab.multus import NETWORK_STATUS_ANNOTATION, OLD_NETWORK_STATUS_ANNOTATION
from lab.state import state_dir
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

NS = "default"
RELEASES = {"n111": "1.1.1", "n111r": "1.1.1", "n120": "1.2.0", "n162": "1.6.2"}
MULTUS_39 = "n111"  # the only node on the Multus 3.9 stand-in; every other runs real Multus


def _node(name: str, index: int, release: str, multus: str) -> dict:
    return {
        "name": name,
        "nics": [
            {"name": "eth0", "address": f"10.0.0.{11 + index}/24", "default_route": True},
            {"name": "eth1"},
            {"name": "eth2"},
        ],
        "host_device": release,
        "multus": multus,
        "labels": {"nicportal.io/host-device": release},
    }


@pytest.fixture(scope="module")
def releases_lab(lab_requirements, tmp_path_factory):
    layout = tmp_path_factory.mktemp("layout") / "releases.yaml"
    layout.write_text(
        yaml.safe_dump(
            {
                "nodes": [
                    _node(name, i, release, "3.9" if name == MULTUS_39 else "4.2")
                    for i, (name, release) in enumerate(RELEASES.items())
                ]
            }
        )
    )
    name = f"rel{os.getpid()}"
    try:
        handle = LabHandle(control.up(name, layout_path=layout))
    except Exception:
        control.down(name)
        raise
    try:
        yield handle
    finally:
        handle.close()
        control.down(name)
        shutil.rmtree(state_dir(name), ignore_errors=True)


@pytest.fixture
def portal(releases_lab, settings):
    releases_lab.reset()
    settings.KUBECONFIG = str(releases_lab.portal_kubeconfig)
    settings.AGENT_MASTER_KEY = releases_lab.agent_master_key
    settings.CLUSTER_NAME = releases_lab.cluster_name  # what the lab derived the node keys with
    settings.AGENT_NAMESPACE = "nicportal"
    settings.MULTUS_VERSION = ""
    report = polling.sweep_inline(workers=3)
    assert report.cluster_error == "", report.cluster_error
    yield releases_lab
    releases_lab.reset()


def kubectl(lab: LabHandle, *args: str, stdin: str | None = None) -> str:
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(lab.kubeconfig), *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


def events(lab: LabHandle, pod: str, reason: str) -> list[dict]:
    return [e for e in lab.pod_events(NS, pod) if e["reason"] == reason]


def eth0_nad(name: str) -> dict:
    return {"cniVersion": "0.3.1", "name": name, "type": "host-device", "device": "eth0"}


def eexist_bug(node: str) -> bool | None:
    """The builder's version table, on the plugin facts the portal stored from the agent."""
    return nad.plugin_has_eexist_bug(facts.plugin_facts(Node.objects.get(name=node)))


def test_each_node_runs_its_own_release_and_the_portal_sees_it(portal):
    highest = {
        node: facts.plugin_facts(Node.objects.get(name=node)).supported_versions[-1]
        for node in RELEASES
    }
    assert highest == {"n111": "1.0.0", "n111r": "1.0.0", "n120": "1.0.0", "n162": "1.1.0"}
    assert {n.name: n.host_device for n in portal.nodes} == RELEASES


def test_device_eth0_fails_on_v1_2_0_with_its_own_eexist_error_and_is_diagnosed(portal):
    portal.create_nad(NS, "uplink", eth0_nad("uplink"))
    pod = portal.create_pod(NS, "web-120", "n120", "uplink")

    assert pod["status"]["phase"] == "Pending"
    [event] = events(portal, "web-120", "FailedCreatePodSandBox")
    assert event["source"] == {"component": "kubelet", "host": "n120"}
    assert "failed to move link file exists" in event["message"]
    assert "eth0" in portal.link_names("n120")  # the kernel refused: the node keeps its uplink
    assert eexist_bug("n120") is True

    result = diagnosis.diagnose(namespace=NS, name="web-120")
    assert result.code == "EEXIST_COLLISION", result
    assert "file exists" in result.evidence[0].value


def test_device_eth0_on_v1_6_2_does_what_that_release_does(portal):
    """v1.6.2 moves the link through a temporary netns: no EEXIST. It takes the node's uplink
    into the pod (multus-cni #557), which is why the builder never emits it; DEL gives it back."""
    mac = next(lk for lk in portal.links("n162") if lk["ifname"] == "eth0")["address"]
    portal.create_nad(NS, "uplink", eth0_nad("uplink"))
    pod = portal.create_pod(NS, "web-162", "n162", "uplink")

    assert pod["status"]["phase"] == "Running"
    assert events(portal, "web-162", "FailedCreatePodSandBox") == []
    assert eexist_bug("n162") is False
    inside = {lk["ifname"]: lk["address"] for lk in portal.pod_links(NS, "web-162")}
    assert inside["net1"] == mac
    assert "eth0" not in portal.link_names("n162")

    portal.delete_pod(NS, "web-162")
    assert "eth0" in portal.link_names("n162")


@pytest.mark.parametrize("node", list(RELEASES))
def test_the_builders_eth1_nad_works_add_and_del_on_every_release(portal, node):
    team = make_team("blue")
    user = make_user("alice", teams=[team])
    nic = Interface.objects.get(node__name=node, name="eth1")
    built = nads.render(user=user, namespace=NS, name=f"fast-{node}", interface_ids=[nic.pk])
    assert built.ok, built.findings
    [rendered] = built.nads

    applied = kubectl(portal, "apply", "-f", "-", stdin=rendered.yaml)
    assert f"networkattachmentdefinition.k8s.cni.cncf.io/fast-{node} created" in applied
    pod = portal.create_pod(NS, f"app-{node}", None, f"fast-{node}",
                            node_selector={"kubernetes.io/hostname": node})  # fmt: skip

    assert pod["spec"]["nodeName"] == node and pod["status"]["phase"] == "Running"
    assert "eth1" not in portal.link_names(node)
    annotations = pod["metadata"]["annotations"]
    default, attached = json.loads(annotations[NETWORK_STATUS_ANNOTATION])
    assert default["default"] is True and default["interface"] == "eth0"
    # No "ips" key without addresses (Multus leaves it out); "mtu" only where a 1.1.0 result
    # carries one to a Multus 4.x.
    mtu = attached.pop("mtu", None)
    assert mtu is None or (node == "n162" and isinstance(mtu, int))
    assert attached == {"name": f"{NS}/fast-{node}", "interface": "net1", "mac": nic.mac, "dns": {}}
    assert (OLD_NETWORK_STATUS_ANNOTATION in annotations) == (node == MULTUS_39)
    added = events(portal, f"app-{node}", "AddedInterface")
    assert f"Add net1 [] from {NS}/fast-{node}" in [e["message"] for e in added]
    assert {e["source"]["component"] for e in added} == {"multus"}

    described = kubectl(portal, "describe", "pod", f"app-{node}", "-n", NS)
    assert "AddedInterface" in described and f"Successfully assigned {NS}/app-{node}" in described

    portal.delete_pod(NS, f"app-{node}")
    back = next(lk for lk in portal.links(node) if lk["ifname"] == "eth1")
    assert back["address"] == nic.mac


def test_a_missing_nad_is_a_multus_no_network_found_event(portal):
    pod = portal.create_pod(NS, "lost", "n120", "nothere")
    assert pod["status"]["phase"] == "Pending"
    # One per sandbox attempt: the lab's kubelet may have tried again before this reads them.
    warnings = events(portal, "lost", "NoNetworkFound")
    assert warnings
    for warning in warnings:
        assert warning["type"] == "Warning" and warning["source"]["component"] == "multus"
        assert warning["message"].startswith(
            "cannot find a network-attachment-definition (nothere) in namespace (default)"
        )
