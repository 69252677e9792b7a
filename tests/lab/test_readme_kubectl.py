"""The README's kubectl walk-through, run as written against the lab (only KUBECONFIG differs):
kubectl get nodes, apply -f of a NAD and describe pod work on the real control plane, and the
pod's Events carry host-device's own EEXIST error."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.lab

README = Path(__file__).resolve().parents[2] / "README.md"


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
    done = subprocess.run(
        ["timeout", "120", "bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        env={"PATH": "/usr/bin:/bin", "KUBECONFIG": str(clean_lab.kubeconfig), "HOME": "/tmp"},
        capture_output=True,
        text=True,
        timeout=150,
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
