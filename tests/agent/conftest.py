"""Fixtures for the node agent: real network namespaces, sysfs fixture trees, the real process."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from nodeagent import auth
from tests.preflight import skip_or_fail

REPO = Path(__file__).resolve().parents[2]
MASTER = b"agent-tests-master-key-0123456789abcdef"
CLUSTER = "agent-tests"
NODE = "node-a"
NODE_KEY = auth.derive_node_key(MASTER, cluster=CLUSTER, node=NODE)


def signed(
    port: int, path: str = "/v1/snapshot", *, node: str = NODE, key: bytes = NODE_KEY, **kw
) -> dict:
    """Headers of a portal request to the agent on 127.0.0.1:port, signed as the portal signs
    them (X-Test-Nonce: the request's nonce, for checking the answer's signature)."""
    header, request = auth.sign_request(
        [key],
        direction=auth.PORTAL_TO_AGENT,
        method="GET",
        authority=kw.pop("authority", f"127.0.0.1:{port}"),
        path=path,
        node=node,
        **kw,
    )
    return {"Authorization": header, "X-Test-Nonce": request.nonce}


def ip(*args: str, netns: str | None = None, check: bool = True) -> str:
    prefix = ["ip", "-n", netns] if netns else ["ip"]
    result = subprocess.run(prefix + list(args), capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def ip_json(*args: str, netns: str) -> list:
    return json.loads(ip("-j", *args, netns=netns) or "[]")


def _netns_supported() -> bool:
    return (
        os.geteuid() == 0 and subprocess.run(["ip", "netns", "list"], check=False).returncode == 0
    )


@pytest.fixture
def make_netns():
    """Creates namespaces named nptest-agent-<suffix>; deletes them all at teardown."""
    if not _netns_supported():
        skip_or_fail("needs root and ip netns")
    made: list[str] = []

    def make(label: str = "ns") -> str:
        name = f"nptest-agent-{label}-{uuid.uuid4().hex[:6]}"
        ip("netns", "add", name)
        made.append(name)
        ip("link", "set", "lo", "up", netns=name)
        return name

    yield make
    for name in made:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    """node-a's own key, as `manage.py agentkey node-a` prints it."""
    path = tmp_path / "node.key"
    path.write_text(auth.format_node_key(NODE_KEY) + "\n")
    return path


class AgentProcess:
    """``python -m nodeagent`` as a real child process; its stderr log is kept for assertions."""

    def __init__(self, args: list[str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nodeagent", "--listen", "127.0.0.1:0", *args],
            cwd=REPO,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
        )
        self.lines: list[str] = []
        self._listening = threading.Event()
        self.port: int | None = None
        threading.Thread(target=self._read_log, daemon=True).start()

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            match = re.search(r"event=listening .*port=(\d+)", line)
            if match:
                self.port = int(match.group(1))
                self._listening.set()
        self._listening.set()

    def wait_listening(self, timeout: float = 30) -> AgentProcess:
        self._listening.wait(timeout)
        if self.port is None:
            raise AssertionError("agent did not start:\n" + "".join(self.lines))
        return self

    def log_has(self, pattern: str, timeout: float = 10) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(re.search(pattern, line) for line in self.lines):
                return True
            time.sleep(0.05)
        return False

    def get(self, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", headers=headers or {}
        )
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            with opener.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            body = error.read()
            return error.code, dict(error.headers), body

    def snapshot(self, headers: dict | None = None) -> tuple[int, dict, bytes]:
        """A signed GET /v1/snapshot; the answer's signature is checked before it is returned."""
        request_headers = signed(self.port)
        nonce = request_headers.pop("X-Test-Nonce")
        status, response_headers, body = self.get(
            "/v1/snapshot", {**request_headers, **(headers or {})}
        )
        auth.verify_answer(
            response_headers.get(auth.SIGNATURE_HEADER),
            {auth.key_id(NODE_KEY): NODE_KEY},
            node=NODE,
            nonce=nonce,
            status=status,
            etag=response_headers.get("ETag", ""),
            body=body,
        )
        return status, response_headers, body

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def start_agent(key_file: Path):
    started: list[AgentProcess] = []

    def start(*args: str, wait: bool = True) -> AgentProcess:
        if not any(arg in args for arg in ("--key-file", "--master-key-file")):
            args = ("--key-file", str(key_file), *args)
        agent = AgentProcess(["--node-name", NODE, *args])
        started.append(agent)
        return agent.wait_listening() if wait else agent

    yield start
    for agent in started:
        agent.stop()
