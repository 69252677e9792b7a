"""The README's seed walk-through, run as written against the lab (only KUBECONFIG and the lab's
name differ): kubectl get nodes, apply -f of a NAD and describe pod work on the real control
plane, the pod's Events carry host-device's own EEXIST error, and `python -m lab pod` says the
same, then runs a pod with eth1, which `ip` sees inside the pod, and gives eth1 back on delete."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"


def walkthrough() -> str:
    match = re.search(
        r"<!-- kubectl-walkthrough -->\s*```sh\n(.*?)```\s*<!-- /kubectl-walkthrough -->",
        README.read_text(),
        re.S,
    )
    assert match, "README has no kubectl-walkthrough block"
    return match.group(1)


def test_the_readme_kubectl_walkthrough_works_against_the_lab(clean_lab):
    script = walkthrough()
    lines = [ln for ln in script.splitlines() if not ln.startswith("export KUBECONFIG=")]
    assert len(lines) < len(script.splitlines()), "the walk-through sets KUBECONFIG"
    env = {
        "PATH": "/usr/bin:/bin",
        "KUBECONFIG": str(clean_lab.kubeconfig),
        "HOME": "/tmp",
        # `python -m lab` finds the lab by name, as it finds make run's through var/run.env.
        "NICPORTAL_LAB_NAME": clean_lab.name,
        "NICPORTAL_RUN_ENV": "",
    }
    if os.environ.get("NICPORTAL_LAB_DIR"):
        env["NICPORTAL_LAB_DIR"] = os.environ["NICPORTAL_LAB_DIR"]
    mac = next(link for link in clean_lab.links("node-b") if link["ifname"] == "eth1")["address"]
    done = subprocess.run(
        ["timeout", "240", "bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=270,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    out = done.stdout
    for node in clean_lab.nodes:
        assert re.search(rf"^{node.name}\s+Ready\s", out, re.M), out
    assert "networkattachmentdefinition.k8s.cni.cncf.io/macvlan-conf created" in out
    assert "pod/web created" in out
    assert re.search(r"Warning\s+FailedCreatePodSandBox", out), out
    assert "failed to move link file exists" in out
    assert "k8s.v1.cni.cncf.io/networks: macvlan-conf" in out
    # python -m lab pod: the same refusal, in host-device's words, and exit status 1.
    assert (
        'lab: pod default/web failed on node-b: error adding container to network "macvlan-conf":'
        " failed to move link file exists"
    ) in done.stderr
    assert "exit 1" in out
    # The eth1 NAD: the pod runs on node-b with node-b's eth1 as net1.
    assert "networkattachmentdefinition.k8s.cni.cncf.io/eth1-net created" in out
    assert re.search(r"^pod default/web is Running on node-b \(netns nplab-", out, re.M), out
    assert re.search(rf"^\s+net1\s+default/eth1-net\s+eth1 from node-b\s+-\s+{mac}$", out, re.M)
    assert re.search(
        r"^default\s+web\s+node-b\s+Running\s+net1=eth1 \(default/eth1-net\)$", out, re.M
    ), out
    # `ip link` inside the pod's namespace: net1 with node-b's eth1's MAC, alias eth1.
    assert re.search(rf"net1@\S+: .*\n\s+link/ether {mac} .*\n\s+alias eth1", out), out
    # Deleted: eth1 is back on node-b.
    assert out.rstrip().endswith("pod default/web deleted; eth1 is back on node-b"), out
    assert mac in {link["address"] for link in clean_lab.links("node-b")}
    assert clean_lab.get_pod("default", "web") is None
