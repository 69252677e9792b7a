"""`python -m lab up|down|status`: separate labs, so they never disturb the session lab."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lab import topology
from nodeagent import auth

pytestmark = [pytest.mark.lab, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def run_lab(*args: str, state_root: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NICPORTAL_LAB_DIR": str(state_root)}
    return subprocess.run(
        [sys.executable, "-m", "lab", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def processes_mentioning(text: str) -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            command = cmdline.read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in command:
            found.append(command)
    return found


def assert_nothing_left(name: str, state_root: Path) -> None:
    assert topology.list_namespaces(topology.lab_prefix(name)) == []
    assert processes_mentioning(str(state_root / name)) == []
    assert processes_mentioning(f"--netns nplab-{name}-") == []


@pytest.fixture
def state_root(tmp_path, lab_requirements):
    return tmp_path / "labs"


def test_up_status_and_down_leave_no_namespace_link_or_process(state_root):
    name = f"lc{os.getpid()}"
    try:
        up = run_lab("up", "--name", name, state_root=state_root)
        assert up.returncode == 0, up.stderr
        again = run_lab("up", "--name", name, state_root=state_root)
        assert again.returncode == 0 and json.loads(again.stdout) == json.loads(up.stdout)

        status = run_lab("status", "--name", name, "--json", state_root=state_root)
        found = json.loads(status.stdout)
        assert found["running"] is True
        assert set(found) >= {"name", "api_url", "kubeconfig", "agent_master_key_file", "nodes"}
        assert found["cluster_name"] == "lab"
        assert [n["netns"] for n in found["nodes"]] == [
            f"nplab-{name}-node-a", f"nplab-{name}-node-b", f"nplab-{name}-node-c"
        ]  # fmt: skip
        assert all(n["agent_url"].startswith("http://127.0.0.1:") for n in found["nodes"])
        assert found["api_url"].startswith("https://127.0.0.1:")
        assert processes_mentioning(str(state_root / name))
        links = topology.links(f"nplab-{name}-switch")
        assert len(links) > 10
    finally:
        down = run_lab("down", "--name", name, state_root=state_root)
    assert down.returncode == 0, down.stderr
    assert_nothing_left(name, state_root)
    assert run_lab("status", "--name", name, state_root=state_root).returncode == 3
    # down is idempotent
    assert run_lab("down", "--name", name, state_root=state_root).returncode == 0


def test_down_cleans_up_after_up_failed_on_a_taken_port(state_root):
    name = f"lf{os.getpid()}"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        up = run_lab("up", "--name", name, "--api-port", str(port), state_root=state_root)
        assert up.returncode == 1
        assert "daemon exited" in up.stderr
        assert topology.list_namespaces(topology.lab_prefix(name))  # the failed up left these
    down = run_lab("down", "--name", name, state_root=state_root)
    assert down.returncode == 0, down.stderr
    assert_nothing_left(name, state_root)


def test_a_bad_layout_fails_before_anything_is_made(state_root, tmp_path):
    layout = tmp_path / "bad.yaml"
    layout.write_text("nodes:\n  - name: node-x\n    nics: [{name: eth1}]\n")
    name = f"lb{os.getpid()}"
    up = run_lab("up", "--name", name, "--layout", str(layout), state_root=state_root)
    assert up.returncode == 1
    assert "no NIC with an address and the default route" in up.stderr
    assert_nothing_left(name, state_root)


def _signed_snapshot_request(lab, node, key: bytes) -> urllib.request.Request:
    port = int(node.agent_url.rsplit(":", 1)[1])
    header, _ = auth.sign_request(
        [key],
        direction=auth.PORTAL_TO_AGENT,
        method="GET",
        authority=f"127.0.0.1:{port}",
        path="/v1/snapshot",
        node=node.name,
    )
    return urllib.request.Request(
        node.agent_url + "/v1/snapshot", headers={"Authorization": header}
    )


def test_each_node_agent_answers_to_its_own_key_derived_from_the_lab_master(lab):
    master = lab.agent_master_key.encode()
    for node in lab.nodes:
        with urllib.request.urlopen(node.agent_url + "/healthz", timeout=5) as resp:
            assert resp.status == 200
        key = auth.derive_node_key(master, cluster=lab.cluster_name, node=node.name)
        assert lab.agent_key(node.name) == key  # the agent got its own node's key, not the master
        with urllib.request.urlopen(_signed_snapshot_request(lab, node, key), timeout=10) as resp:
            snapshot = resp.read().decode()
        assert "eth0" in snapshot
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(lab.nodes[0].agent_url + "/v1/snapshot", timeout=5)
    assert caught.value.code == 401
    # One node's key does not open another node's agent.
    first, second = lab.nodes[0], lab.nodes[1]
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(_signed_snapshot_request(lab, first, lab.agent_key(second.name)))
    assert caught.value.code == 401


def test_the_agents_get_node_keys_and_never_the_master(lab):
    master = lab.agent_master_key
    for pid in lab.state.read_pids().values():
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        assert "--key-file" in cmdline and "--master-key-file" not in cmdline
        assert str(lab.agent_master_key_file) not in cmdline
        key_file = Path(cmdline[cmdline.index("--key-file") + 1])
        assert master not in key_file.read_text()
        assert key_file.stat().st_mode & 0o077 == 0


def test_every_lab_socket_listens_on_loopback_only(lab):
    daemon_pid = int(lab.state.pid_file.read_text())
    group = {
        int(p.parent.name) for p in Path("/proc").glob("[0-9]*/stat") if _pgid(p) == daemon_pid
    }
    listening = subprocess.run(["ss", "-Hltnp"], capture_output=True, text=True).stdout
    ours = [line for line in listening.splitlines() if any(f"pid={pid}," in line for pid in group)]
    assert len(ours) >= 1 + len(lab.nodes)
    for line in ours:
        assert line.split()[3].startswith("127.0.0.1:"), line


def _pgid(stat: Path) -> int | None:
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


def test_down_stops_agents_left_behind_by_a_killed_daemon(state_root):
    name = f"lk{os.getpid()}"
    try:
        up = run_lab("up", "--name", name, state_root=state_root)
        assert up.returncode == 0, up.stderr
        daemon = int((state_root / name / "daemon.pid").read_text())
        os.kill(daemon, 9)
        assert processes_mentioning(f"--netns nplab-{name}-")
    finally:
        down = run_lab("down", "--name", name, state_root=state_root)
    assert down.returncode == 0, down.stderr
    assert_nothing_left(name, state_root)


def test_the_daemon_restarts_an_agent_that_exited(lab):
    node = lab.nodes[-1]
    old_pid = lab.state.read_pids()[node.name]
    assert "nodeagent" in Path(f"/proc/{old_pid}/cmdline").read_bytes().decode()
    os.kill(old_pid, 15)

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        new_pid = lab.state.read_pids()[node.name]
        if new_pid != old_pid and _healthy(node.agent_url):
            break
        time.sleep(0.1)
    assert lab.state.read_pids()[node.name] != old_pid
    assert _healthy(node.agent_url)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/healthz", timeout=1) as resp:
            return resp.status == 200
    except OSError:
        return False
