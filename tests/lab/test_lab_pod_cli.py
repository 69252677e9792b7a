"""`python -m lab pod create|delete|list|netns`, run as a user runs it (a separate process)
against the session's lab: the real kube-apiserver, the lab kubelet and Multus, the node's real
host-device release; what it says is checked against `ip` in the node's and the pod's namespace."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from inventory.rules.nad.render import pod_snippet
from lab import topology

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]


def lab_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "lab", *args],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def pod_cli(lab, *args: str) -> subprocess.CompletedProcess:
    return lab_cli("pod", *args, "--lab", lab.name)


def host_device_nad(lab, name: str, device: str) -> None:
    config = {"cniVersion": "0.3.1", "name": name, "type": "host-device", "device": device}
    lab.create_nad("default", name, config)


def link(links: list[dict], name: str) -> dict:
    return next(item for item in links if item["ifname"] == name)


def assert_one_line_error(done: subprocess.CompletedProcess, *needles: str) -> None:
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stderr.startswith("lab: ") and done.stderr.count("\n") == 1, done.stderr
    for needle in needles:
        assert needle in done.stderr


def test_create_list_and_delete_move_eth1_into_the_pod_and_back(clean_lab):
    host_device_nad(clean_lab, "eth1-net", "eth1")
    mac = link(clean_lab.links("node-b"), "eth1")["address"]

    created = pod_cli(clean_lab, "create", "web", "--node", "node-b", "--network", "eth1-net")
    assert created.returncode == 0, created.stderr
    netns = clean_lab.pod_netns("default", "web")
    assert created.stdout.splitlines()[0] == (
        f"pod default/web is Running on node-b (netns {netns})"
    )
    assert re.search(
        rf"^\s+net1\s+default/eth1-net\s+eth1 from node-b\s+-\s+{mac}$", created.stdout, re.M
    ), created.stdout
    assert re.search(
        r"^\s+eth0\s+k8s-pod-network\s+the cluster network\s+10\.244\.", created.stdout, re.M
    )
    # What it says is what `ip` sees: eth1 left node-b and is net1 in the pod, alias eth1.
    assert "eth1" not in clean_lab.link_names("node-b")
    net1 = link(topology.links(netns), "net1")
    assert (net1["address"], net1.get("ifalias")) == (mac, "eth1")
    assert clean_lab.get_pod("default", "web")["status"]["phase"] == "Running"

    shown = pod_cli(clean_lab, "netns", "web")
    assert (shown.returncode, shown.stdout) == (0, f"{netns}\n"), shown.stderr
    ip_link = subprocess.run(
        ["ip", "-n", shown.stdout.strip(), "link"], capture_output=True, text=True, check=True
    )
    assert re.search(r"net1@\S+: .*\n.*\n\s+alias eth1", ip_link.stdout), ip_link.stdout

    listed = pod_cli(clean_lab, "list")
    assert listed.returncode == 0, listed.stderr
    assert re.split(r"\s{2,}", listed.stdout.splitlines()[0]) == [
        "NAMESPACE", "NAME", "NODE", "PHASE", "NETWORKS"
    ]  # fmt: skip
    assert re.search(
        r"^default\s+web\s+node-b\s+Running\s+net1=eth1 \(default/eth1-net\)$",
        listed.stdout,
        re.M,
    ), listed.stdout
    everywhere = pod_cli(clean_lab, "list", "-A")
    assert re.search(r"^nicportal\s+nicportal-agent-node-b\s+node-b\s+Running\s+host network$",
                     everywhere.stdout, re.M), everywhere.stdout  # fmt: skip
    assert re.search(r"^default\s+web\s+node-b\s+Running\s", everywhere.stdout, re.M)

    deleted = pod_cli(clean_lab, "delete", "web")
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout == "pod default/web deleted; eth1 is back on node-b\n"
    # Gone from the API, its namespace gone, eth1 back on node-b with its own MAC.
    assert clean_lab.get_pod("default", "web") is None
    assert not topology.netns_exists(netns)
    assert link(clean_lab.links("node-b"), "eth1")["address"] == mac
    assert pod_cli(clean_lab, "list").stdout == "no pods in namespace default\n"


def test_a_create_on_eth0_fails_with_host_devices_reason_and_the_pod_stays(clean_lab):
    host_device_nad(clean_lab, "macvlan-conf", "eth0")
    done = pod_cli(clean_lab, "create", "web", "--node", "node-b", "--network", "macvlan-conf")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    first, event, hint = done.stderr.splitlines()
    assert first == (
        "lab: pod default/web failed on node-b: error adding container to network"
        ' "macvlan-conf": failed to move link file exists'
    )
    assert event.startswith("  FailedCreatePodSandBox: Failed to create pod sandbox: ")
    assert "`python -m lab pod delete web` removes it" in hint
    # As with kubectl, the pod stays (the kubelet retries it) and the list says why it waits.
    listed = pod_cli(clean_lab, "list")
    assert re.search(
        r"^default\s+web\s+node-b\s+Pending \(FailedCreatePodSandBox\)\s+macvlan-conf"
        r" \(not attached\)$",
        listed.stdout,
        re.M,
    ), listed.stdout
    # node-b's eth0 never moved.
    assert "eth0" in clean_lab.link_names("node-b")
    deleted = pod_cli(clean_lab, "delete", "web")
    assert (deleted.returncode, deleted.stdout) == (0, "pod default/web deleted\n")
    assert clean_lab.get_pod("default", "web") is None


def test_a_create_for_a_nic_another_pod_holds_fails_with_the_plugins_reason(clean_lab):
    host_device_nad(clean_lab, "eth2-net", "eth2")
    holder = clean_lab.create_pod("default", "holder", "node-c", "eth2-net")
    assert holder["status"]["phase"] == "Running"
    done = pod_cli(clean_lab, "create", "second", "--node", "node-c", "--network", "eth2-net")
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines()[0] == (
        "lab: pod default/second failed on node-c: error adding container to network"
        ' "eth2-net": failed to find host device: Link not found'
    ), done.stderr
    # The holder keeps its NIC.
    assert "net1" in {item["ifname"] for item in clean_lab.pod_links("default", "holder")}


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [(("node-c",), {"node-c"}), (("node-a", "node-c"), {"node-a", "node-c"})],
    ids=["nodeSelector", "node-affinity"],
)
def test_the_builders_pod_snippet_works_as_a_file(clean_lab, tmp_path, nodes, expected):
    """The portal's own snippet (nodeSelector for one node, required affinity for several),
    dumped as the builder shows it: the lab kubelet places the pod on one of those nodes."""
    host_device_nad(clean_lab, "eth3-net", "eth3")
    snippet = pod_snippet(namespace="default", name="eth3-net", pod_interface="fast0", nodes=nodes)
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(snippet, default_flow_style=False, sort_keys=False))
    done = pod_cli(clean_lab, "create", "snippet", "-f", str(path))
    assert done.returncode == 0, done.stderr
    node = clean_lab.get_pod("default", "snippet")["spec"]["nodeName"]
    assert node in expected
    assert f"is Running on {node}" in done.stdout
    assert re.search(rf"^\s+fast0\s+default/eth3-net\s+eth3 from {node}\s", done.stdout, re.M)
    assert "eth3" not in clean_lab.link_names(node)
    assert pod_cli(clean_lab, "delete", "snippet").returncode == 0
    assert "eth3" in clean_lab.link_names(node)


def test_a_pod_no_node_matches_fails_with_the_schedulers_reason(clean_lab, tmp_path):
    path = tmp_path / "pod.yaml"
    path.write_text("spec:\n  nodeSelector: {kubernetes.io/hostname: node-z}\n")
    done = pod_cli(clean_lab, "create", "lost", "-f", str(path))
    assert done.returncode == 1, done.stdout + done.stderr
    first, hint = done.stderr.splitlines()
    assert first.startswith(
        "lab: pod default/lost failed: 0/3 nodes are available: 3 node(s) didn't match Pod's"
        " node affinity/selector."
    ), done.stderr
    assert hint.startswith("  the pod stays (Pending until a node matches)")
    listed = pod_cli(clean_lab, "list")
    assert re.search(
        r"^default\s+lost\s+-\s+Pending \(FailedScheduling\)\s+-$", listed.stdout, re.M
    )
    assert pod_cli(clean_lab, "delete", "lost").returncode == 0
    assert clean_lab.get_pod("default", "lost") is None


def test_a_pod_manifest_with_a_namespace_and_json_networks(clean_lab, tmp_path):
    clean_lab.ensure_namespace("team-a")
    config = {"cniVersion": "0.3.1", "name": "eth2-net", "type": "host-device", "device": "eth2"}
    clean_lab.create_nad("team-a", "eth2-net", config)
    manifest = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "from-file",
            "namespace": "team-a",
            "annotations": {
                "k8s.v1.cni.cncf.io/networks": json.dumps([{"name": "eth2-net", "interface": "d0"}])
            },
        },
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }
    path = tmp_path / "pod.yaml"
    path.write_text(yaml.safe_dump(manifest))
    done = pod_cli(clean_lab, "create", "-f", str(path))
    # No placement in the file: the lab kubelet picks a node.
    assert done.returncode == 0, done.stderr
    pod = clean_lab.get_pod("team-a", "from-file")
    assert pod["spec"]["containers"][0]["image"] == "registry.invalid/app:1"
    assert re.search(r"^\s+d0\s+team-a/eth2-net\s+eth2 from node-[abc]\s", done.stdout, re.M)
    listed = pod_cli(clean_lab, "list", "-n", "team-a")
    assert re.search(r"^team-a\s+from-file\s+node-[abc]\s+Running\s+d0=eth2", listed.stdout, re.M)
    deleted = pod_cli(clean_lab, "delete", "from-file", "-n", "team-a")
    assert deleted.returncode == 0 and "eth2 is back on node-" in deleted.stdout


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (
            ("create", "web", "--network", "nowhere"),
            ["no NetworkAttachmentDefinition default/nowhere"],
        ),
        (("create", "Web_1"), ["pod name 'Web_1'"]),
        (("create", "web", "-n", "No_Such"), ["namespace 'No_Such'"]),
        (("create", "web", "-n", "absent"), ["no namespace absent"]),
        (("create", "web", "--node", "node-z"), ["no node node-z", "node-a, node-b, node-c"]),
        (("create", "web", "--network", "a/b/c"), ["--network 'a/b/c'"]),
        (("create", "web", "--network", "nad@an-interface-name-too-long"), ["1-15 characters"]),
        (("create",), ["name the pod"]),
        (("create", "web", "-f", "/nonexistent/pod.yaml"), ["No such file"]),
        (("delete", "nobody"), ["no pod default/nobody"]),
        (("netns", "nobody"), ["no pod default/nobody"]),
        (("list", "-n", "Bad_Namespace"), ["namespace 'Bad_Namespace'"]),
    ],
    ids=lambda value: "-".join(value) if isinstance(value, tuple) else None,
)
def test_errors_are_one_line_and_create_nothing(clean_lab, args, needles):
    done = pod_cli(clean_lab, *args)
    assert_one_line_error(done, *needles)
    assert clean_lab.get_pod("default", "web") is None


def test_an_existing_pod_is_not_replaced(clean_lab):
    clean_lab.create_pod("default", "web", "node-a")
    done = pod_cli(clean_lab, "create", "web", "--node", "node-b")
    assert_one_line_error(done, "pod default/web already exists", "pod delete web")
    assert clean_lab.get_pod("default", "web")["spec"]["nodeName"] == "node-a"


def test_without_a_running_lab_the_error_says_how_to_start_one(tmp_path, lab_requirements):
    env = {"NICPORTAL_LAB_DIR": str(tmp_path)}
    missing = lab_cli("pod", "list", "--lab", "nolab", env=env)
    assert_one_line_error(missing, "no lab nolab here", "python -m lab up --name nolab")
    # A lab whose daemon is gone (its state left behind).
    (tmp_path / "gone").mkdir()
    state = {"name": "gone", "api_url": "https://127.0.0.1:1", "nodes": []}
    (tmp_path / "gone" / "lab.json").write_text(json.dumps(state))
    stopped = lab_cli("pod", "create", "web", "--lab", "gone", env=env)
    assert_one_line_error(stopped, "lab gone is not running", "python -m lab up --name gone")
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "lab.json").write_text("{not json")
    broken = lab_cli("pod", "list", "--lab", "broken", env=env)
    assert_one_line_error(broken, "lab broken: its state in", "is unreadable")
    bad = lab_cli("pod", "list", "--lab", "Bad-Name", env=env)
    assert_one_line_error(bad, "lab name 'Bad-Name'")
    # The lab's name comes from NICPORTAL_LAB_NAME (what make run records) without --lab.
    named = lab_cli("pod", "list", env={**env, "NICPORTAL_LAB_NAME": "fromenv"})
    assert_one_line_error(named, "no lab fromenv here")
