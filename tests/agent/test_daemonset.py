"""The agent's DaemonSet: valid for Kubernetes 1.33 and no more privileged than it must be."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

MANIFEST = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes" / "agent-daemonset.yaml"


def kubernetes_validate() -> str:
    candidate = Path(sys.executable).parent / "kubernetes-validate"
    return str(candidate) if candidate.exists() else (shutil.which("kubernetes-validate") or "")


@pytest.fixture(scope="module")
def daemonset() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


def test_it_passes_kubernetes_validate_strict_for_1_33():
    tool = kubernetes_validate()
    assert tool, "kubernetes-validate is in requirements-dev.txt"
    result = subprocess.run(
        [tool, "-k", "1.33", "--strict", str(MANIFEST)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_it_runs_in_the_host_network_with_a_named_agent_port(daemonset):
    assert daemonset["metadata"]["namespace"] == "nicportal"
    assert daemonset["metadata"]["labels"]["app.kubernetes.io/name"] == "nicportal-agent"
    pod = daemonset["spec"]["template"]["spec"]
    assert pod["hostNetwork"] is True
    (container,) = pod["containers"]
    (port,) = container["ports"]
    assert port["name"] == "agent" and port["containerPort"] == port["hostPort"] == 9550
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "agent"}
    assert container["resources"]["requests"] and container["resources"]["limits"]


def test_it_gets_node_name_from_the_downward_api_and_the_current_master_key_only(daemonset):
    pod = daemonset["spec"]["template"]["spec"]
    env = {item["name"]: item for item in pod["containers"][0]["env"]}
    node = env["NICPORTAL_AGENT_NODE_NAME"]["valueFrom"]["fieldRef"]["fieldPath"]
    assert node == "spec.nodeName"
    cluster = env["NICPORTAL_AGENT_CLUSTER_NAME"]["valueFrom"]["configMapKeyRef"]
    assert cluster == {"name": "nicportal-config", "key": "NICPORTAL_CLUSTER_NAME"}
    assert "NICPORTAL_AGENT_TOKEN_FILE" not in env and "NICPORTAL_AGENT_KEY_FILE" not in env
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    secret = volumes["agent-key"]["secret"]
    assert secret["secretName"] == "nicportal-agent-master-key"
    # Only the current master: not the previous one kept during a rotation.
    assert secret["items"] == [{"key": "NICPORTAL_AGENT_MASTER_KEY", "path": "master"}]
    assert secret["defaultMode"] == 0o440
    mounts = {m["mountPath"]: m for m in pod["containers"][0]["volumeMounts"]}
    key_dir, key_name = env["NICPORTAL_AGENT_MASTER_KEY_FILE"]["value"].rsplit("/", 1)
    assert mounts[key_dir]["name"] == "agent-key" and key_name == "master"
    assert pod.get("automountServiceAccountToken") is False


def test_it_mounts_the_cni_bin_dirs_read_only_from_the_host(daemonset):
    pod = daemonset["spec"]["template"]["spec"]
    host_paths = {v["name"]: v["hostPath"]["path"] for v in pod["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in pod["containers"][0]["volumeMounts"]}
    assert sorted(host_paths.values()) == [
        "/opt/cni/bin",
        "/var/snap/microk8s/current/opt/cni/bin",
    ]
    for name, path in host_paths.items():
        assert mounts[name]["readOnly"] is True and mounts[name]["mountPath"] == path


def test_it_drops_every_privilege(daemonset):
    pod = daemonset["spec"]["template"]["spec"]
    security = pod["containers"][0]["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security.get("privileged", False) is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert "hostPID" not in pod and "hostIPC" not in pod
