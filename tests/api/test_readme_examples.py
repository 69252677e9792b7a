"""The README's commands, verbatim, the way a newcomer runs them: `make run`'s script brings up
the lab and the portal (with its own var dir, lab name and port, so that it never touches a
developer's demo), then a second process — a shell with none of make run's variables — runs the
README's blocks exactly as written: the second-shell commands in sh, bash and zsh, the curl
examples in sh. No line is stripped or rewritten; the test only says where the portal listens
($PORTAL, which the examples default to 127.0.0.1:8000) and where make run's var dir is
($NICPORTAL_VAR_DIR, default `var/`)."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from lab.control import free_port
from lab.handle import LabHandle
from lab.pytest_plugin import require_lab
from lab.state import LabState
from tests.preflight import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHELLS = ("sh", "bash", "zsh")
# Variables of make run's kind: the test's own (its database, broker, settings) must not leak in.
MAKE_RUN_KINDS = re.compile(r"^(NICPORTAL_|DJANGO_|CELERY_|DATABASE_URL$|KUBECONFIG$)")

pytestmark = [pytest.mark.lab, pytest.mark.slow]


def readme_block(marker: str) -> str:
    match = re.search(
        rf"<!-- {marker} -->\s*```sh\n(.*?)```\s*<!-- /{marker} -->", README.read_text(), re.S
    )
    assert match, f"README has no {marker} block"
    return match.group(1)


def sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README.read_text(), re.S)


def installed(shell: str) -> bool:
    return shutil.which(shell, path="/usr/bin:/bin") is not None


@dataclass
class RunningPortal:
    url: str
    var: Path
    lab: LabHandle
    log: Path

    def second_shell(self, shell: str, script: str, timeout: float = 180) -> str:
        """`script` in a fresh shell that knows only PATH, HOME, where the portal listens and
        where make run's var dir is: everything else comes from var/run.env."""
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": os.environ.get("HOME", "/root"),
            "NICPORTAL_VAR_DIR": str(self.var),
            "PORTAL": self.url,
        }
        done = subprocess.run(
            [shell, "-e", "-c", script],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        assert done.returncode == 0, (
            f"{shell} exited {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n"
            f"{done.stderr}\n--- make run's log\n{self.log.read_text()[-4000:]}"
        )
        return done.stdout


def wait_for_portal(url: str, process: subprocess.Popen, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"scripts/run exited {process.returncode}:\n{log.read_text()[-4000:]}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(1)
    pytest.fail(f"the portal did not answer within {timeout:.0f} s:\n{log.read_text()[-4000:]}")


@pytest.fixture(scope="module")
def running_portal(tmp_path_factory, artifacts_dir) -> Iterator[RunningPortal]:
    require_lab()
    var = tmp_path_factory.mktemp("make-run-var")
    port = free_port()
    lab_name = f"rt{os.getpid()}"
    env = {name: value for name, value in os.environ.items() if not MAKE_RUN_KINDS.match(name)}
    env.update(
        NICPORTAL_VAR_DIR=str(var),
        NICPORTAL_LAB_DIR=str(var / "lab"),
        NICPORTAL_LAB_NAME=lab_name,
        NICPORTAL_PORT=str(port),
    )
    log = artifacts_dir / "readme-make-run.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            ["scripts/run"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped as a whole below
        )
    lab = None
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for_portal(url, process, log, timeout=420)
        lab = LabHandle(LabState.load(var / "lab" / lab_name))
        yield RunningPortal(url=url, var=var, lab=lab, log=log)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        if lab is not None:
            lab.close()
        subprocess.run(
            [str(ROOT / ".venv/bin/python"), "-m", "lab", "down", "--name", lab_name],
            cwd=ROOT,
            env=env,
            capture_output=True,
            timeout=60,
            check=False,
        )


@pytest.mark.parametrize("shell", SHELLS)
def test_the_second_shell_commands_work_as_written(running_portal, shell):
    if not installed(shell):
        skip_or_fail(f"{shell} is not installed")
    output = running_portal.second_shell(shell, readme_block("second-shell"))
    # showconfig: the demo's database and the lab, read from make run's var/run.env.
    assert f"{running_portal.var}/demo.sqlite3" in output
    assert f"run_env  {running_portal.var}/run.env" in re.sub(r" +", "  ", output)
    assert "cluster.name  lab" in re.sub(r" +", "  ", output)
    # createtoken: a token for demo, in the portal's own database.
    token = next(line for line in output.splitlines() if re.fullmatch(r"[0-9a-f]{64}", line))
    headers = {"Authorization": f"Token {token}"}
    answer = requests.get(f"{running_portal.url}/api/v1/nodes/", headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["count"] == 3
    # lab status: the lab make run started, running.
    assert f"lab {running_portal.lab.name}: running" in output
    # lab pod list -A: that lab's pods, read through its API (the agents, one per node).
    for node in ("node-a", "node-b", "node-c"):
        assert re.search(
            rf"^nicportal\s+nicportal-agent-{node}\s+{node}\s+Running\s+host network$",
            output,
            re.M,
        ), output
    # No command made a database of its own next to the demo's.
    assert sorted(p.name for p in running_portal.var.glob("*.sqlite3")) == ["demo.sqlite3"]


def test_the_curl_examples_work_as_written(running_portal):
    output = running_portal.second_shell("sh", readme_block("curl-examples"))
    lines = output.splitlines()
    outputs = [json.loads(line) for line in lines if line[:1] in "{["]
    free, reservation, rendered, applied, by_name, diagnosis = outputs
    assert {row["name"] for row in free["results"]} >= {"eth1", "eth2", "eth3"}
    assert all(row["state"] == "free" for row in free["results"])
    assert reservation["interface_name"] == "eth2" and reservation["node"] == "node-b"
    assert (reservation["team"], reservation["active"]) == ("platform", True)
    assert rendered["ok"] is True and "host-device" in rendered["nads"][0]["yaml"]
    assert [(nad["name"], nad["origin"]) for nad in applied] == [("fast-net", "portal")]
    nad = running_portal.lab.custom.get_namespaced_custom_object(
        "k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions", "fast-net"
    )
    config = json.loads(nad["spec"]["config"])
    assert config["type"] == "host-device" and config["name"] == "fast-net"
    # eth3 is on node-a too: one NAD per node, each selecting its NIC by MAC.
    assert by_name["ok"] is True, by_name["findings"]
    assert [n["nodes"] for n in by_name["nads"]] == [["node-b"], ["node-c"]]
    assert all("hwaddr" in n["config"] for n in by_name["nads"])
    assert by_name["nads"][0]["config"]["ipam"]["routes"] == [
        {"dst": "198.51.100.0/24", "gw": "192.0.2.1"}
    ]
    assert diagnosis["code"] == "POD_NOT_FOUND"

    header = lines.index(next(line for line in lines if line.startswith("cluster,node,")))
    table = list(csv.DictReader(io.StringIO("\n".join(lines[header:-1]))))
    assert {row["interface"] for row in table} >= {"eth0", "eth1", "eth2", "eth3"}
    assert {row["node"] for row in table} == {"node-b"}
    assert next(row for row in table if row["interface"] == "eth2")["team"] == "platform"

    # The token was revoked by the last example: the demo user's list no longer has it.
    assert lines[-1] == "204"
    mine = requests.get(f"{running_portal.url}/api/v1/tokens/", auth=("demo", "demo"), timeout=10)
    assert "README examples" not in {row["note"] for row in mine.json()["results"]}


@pytest.mark.parametrize("shell", SHELLS)
def test_every_command_block_of_the_readme_parses_in_every_shell(shell):
    if not installed(shell):
        skip_or_fail(f"{shell} is not installed")
    blocks = sh_blocks()
    assert len(blocks) >= 5
    for block in blocks:
        parsed = subprocess.run([shell, "-n"], input=block, capture_output=True, text=True)
        assert parsed.returncode == 0, f"{shell} -n: {parsed.stderr}\n{block}"
        # `[--flag VALUE]` is a synopsis, not a command: zsh would take it for a glob.
        assert not re.search(r"\s\[--", block), block
