"""Node agent benchmark: how fast the agent answers after a change on a node with 65 links, and
its idle RSS. Targets: a change answered in <= 10 ms (median), <= 40 MB idle RSS.

Run as root: ``.venv/bin/python bench/agent_snapshot.py [--json out.json]``. It creates the
namespace nptest-agent-bench-<pid> with 32 veth pairs (64 links + lo) and addresses, runs the real
agent (``python -m nodeagent``) in both modes and times ``GET /v1/snapshot``:

- ``--netns`` mode (the lab's): the agent in the host namespace, its worker in the bench one;
- host mode (the DaemonSet's): the agent started inside the bench namespace; the benchmark opens
  its client sockets there too (setns on the calling thread only).

Scenarios: an unchanged node (200), a conditional GET (304), and a GET right after each kind of
change has returned from ``ip``: an MTU change, an address added or removed, a link taken down
or up, the default route moved to another link. Every answer after a change is checked to show
that change; a stale answer is counted and reported, never silently timed.

Requests are signed as the portal signs them (nodeagent.auth, docs/agent-auth.md), so checking
the signature is part of what is timed.

``--baseline-repo DIR`` runs the agent of another checkout (e.g. the previous release) as well,
interleaved round by round with this one in the same namespace, for before/after figures under
the same load. A checkout from before per-node keys (no ``nodeagent/auth.py``) is given a bearer
token file and asked with that token instead. Traffic stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.stats import summary  # noqa: E402 - run as a script from any directory
from nodeagent import auth  # noqa: E402

NODE = "bench"
KEY = auth.derive_node_key(b"bench-agent-master-not-a-secret", cluster="bench", node=NODE)
# Only for a baseline checkout from before per-node keys (it reads --token-file).
LEGACY_TOKEN = "bench-token"
PAIRS = 32
CLONE_NEWNET = 0x40000000


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True)


def load_average() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def git_revision(repo: Path) -> str:
    result = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    )
    return result.stdout.strip() or "unknown"


@contextlib.contextmanager
def in_namespace(netns: str | None) -> Iterator[None]:
    """Switch the calling thread's network namespace (sockets opened meanwhile stay there)."""
    if netns is None:
        yield
        return
    libc = ctypes.CDLL(None, use_errno=True)
    original = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    target = os.open(f"/run/netns/{netns}", os.O_RDONLY)
    try:
        if libc.setns(target, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {netns}")
        yield
    finally:
        libc.setns(original, CLONE_NEWNET)
        os.close(original)
        os.close(target)


class Credentials:
    """The agent's node key file, and a token file for a baseline from before per-node keys."""

    def __init__(self) -> None:
        self.key_file = self._write(".key", auth.format_node_key(KEY))
        self.token_file = self._write(".token", LEGACY_TOKEN)

    @staticmethod
    def _write(suffix: str, text: str) -> str:
        with tempfile.NamedTemporaryFile("w", suffix=suffix, delete=False) as handle:
            handle.write(text)
        return handle.name

    def remove(self) -> None:
        for name in (self.key_file, self.token_file):
            os.unlink(name)


class Agent:
    """``python -m nodeagent`` from ``repo``; ``inside`` runs it in that namespace (host mode)."""

    def __init__(self, repo: Path, files: Credentials, *, netns: str | None, inside: str | None):
        command = [sys.executable, "-m", "nodeagent", "--listen", "127.0.0.1:0"]
        self.signed = (repo / "nodeagent" / "auth.py").exists()
        if self.signed:
            command += ["--key-file", files.key_file]
        else:
            command += ["--token-file", files.token_file]
        command += ["--node-name", NODE]
        command += ["--netns", netns] if netns else []
        if inside:
            command = ["ip", "netns", "exec", inside, *command]
        self.inside = inside
        self.proc = subprocess.Popen(
            command, cwd=repo, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
        )
        self.port = 0
        for line in self.proc.stderr:
            match = re.search(r"event=listening .*port=(\d+)", line)
            if match:
                self.port = int(match.group(1))
                break
        if not self.port:
            raise SystemExit("agent did not start")
        # Keep draining the log so the agent never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def get(self, etag: str | None = None) -> tuple[int, str, bytes]:
        if self.signed:
            authorization, _ = auth.sign_request(
                [KEY],
                direction=auth.PORTAL_TO_AGENT,
                method="GET",
                authority=f"127.0.0.1:{self.port}",
                path="/v1/snapshot",
                node=NODE,
            )
        else:
            authorization = f"Bearer {LEGACY_TOKEN}"
        headers = {"Authorization": authorization}
        if etag:
            headers["If-None-Match"] = etag
        with in_namespace(self.inside):
            connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            connection.connect()
        try:
            connection.request("GET", "/v1/snapshot", headers=headers)
            response = connection.getresponse()
            return response.status, response.getheader("ETag") or "", response.read()
        finally:
            connection.close()

    def rss_mb(self) -> tuple[float, float]:
        """(the agent process, its netns worker children) in MB."""
        pid = self.proc.pid
        if self.inside:  # `ip netns exec` execs the agent: same pid
            return _rss(pid), 0.0
        children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        return _rss(pid), sum(_rss(int(child)) for child in children.stdout.split())

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def _rss(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def links_of(body: bytes) -> dict[str, dict]:
    return {link["name"]: link for link in json.loads(body)["links"]}


def change_scenarios(netns: str) -> dict[str, Callable[[int], Callable[[dict], bool]]]:
    """name -> change(i): makes the i-th change and returns a check of the answer's links."""

    def mtu(i: int):
        value = 1400 + i % 2
        ip(netns, "link", "set", "eth0", "mtu", str(value))
        return lambda links: links["eth0"]["mtu"] == value

    def address(i: int):
        added = i % 2 == 0
        ip(netns, "addr", "add" if added else "del", "10.200.0.1/32", "dev", "eth1")
        return lambda links: (
            added == any(entry["address"] == "10.200.0.1" for entry in links["eth1"]["addresses"])
        )

    def up_down(i: int):
        state = "down" if i % 2 == 0 else "up"
        ip(netns, "link", "set", "eth2", state)
        # carrier is null exactly while the link is administratively down
        return lambda links: (links["eth2"]["carrier"] is None) == (state == "down")

    def default_route(i: int):
        device = ("eth3", "eth4")[i % 2]
        ip(netns, "route", "replace", "default", "dev", device)
        return lambda links: links[device]["default_route_v4"] is True

    return {
        "MTU change": mtu,
        "address added/removed": address,
        "link down/up": up_down,
        "default route moved": default_route,
    }


def measure(agent: Agent, netns: str, runs: int, change_runs: int, samples: dict) -> None:
    def timed_get(etag: str | None = None) -> tuple[float, int, bytes]:
        started = time.perf_counter()
        status, _, body = agent.get(etag)
        return time.perf_counter() - started, status, body

    status, etag, _ = agent.get()
    assert status == 200, status
    for _ in range(runs):
        elapsed, status, _ = timed_get()
        assert status == 200
        samples.setdefault("unchanged (200)", []).append(elapsed)
    for _ in range(runs):
        elapsed, status, _ = timed_get(etag)
        assert status == 304
        samples.setdefault("If-None-Match (304)", []).append(elapsed)
    for name, change in change_scenarios(netns).items():
        for index in range(change_runs):
            check = change(index)
            elapsed, status, body = timed_get()
            assert status == 200
            samples.setdefault(f"after: {name}", []).append(elapsed)
            if not check(links_of(body)):
                samples.setdefault("stale", []).append(name)


def build_namespace(netns: str) -> None:
    subprocess.run(["ip", "netns", "add", netns], check=True)
    ip(netns, "link", "set", "lo", "up")
    for pair in range(PAIRS):
        ip(netns, "link", "add", f"eth{pair}", "type", "veth", "peer", "name", f"sw{pair}")
        ip(netns, "link", "set", f"eth{pair}", "up")
        ip(netns, "link", "set", f"sw{pair}", "up")
        ip(netns, "addr", "add", f"10.{pair}.0.1/24", "dev", f"eth{pair}")
    ip(netns, "route", "add", "default", "dev", "eth3")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200, help="GETs per round, unchanged node")
    parser.add_argument("--change-runs", type=int, default=50, help="per change kind and round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--baseline-repo", type=Path, help="another checkout to compare with")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    netns = f"nptest-agent-bench-{os.getpid()}"
    repos = {"current": REPO}
    if args.baseline_repo:
        repos = {"baseline": args.baseline_repo.resolve(), "current": REPO}
    results: dict = {
        "links": 2 * PAIRS + 1,
        "revisions": {label: git_revision(repo) for label, repo in repos.items()},
        "load_average_start": load_average(),
        "agents": {},
    }
    files = Credentials()
    build_namespace(netns)
    try:
        samples: dict[tuple[str, str], dict] = {}
        rss: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _round in range(args.rounds):
            for label, repo in repos.items():
                for mode, kwargs in (
                    ("netns", {"netns": netns, "inside": None}),
                    ("host", {"netns": None, "inside": netns}),
                ):
                    agent = Agent(repo, files, **kwargs)
                    try:
                        measure(
                            agent,
                            netns,
                            args.runs,
                            args.change_runs,
                            samples.setdefault((label, mode), {}),
                        )
                        time.sleep(3)
                        rss.setdefault((label, mode), []).append(agent.rss_mb())
                    finally:
                        agent.stop()
        for (label, mode), by_scenario in samples.items():
            stale = by_scenario.pop("stale", [])
            entry = results["agents"].setdefault(label, {})
            entry[mode] = {
                "scenarios": {
                    name: summary(values, scale=1000, digits=2)
                    for name, values in by_scenario.items()
                },
                "stale_answers": len(stale),
                "rss_mb": max(agent for agent, _worker in rss[(label, mode)]),
                "worker_rss_mb": max(worker for _agent, worker in rss[(label, mode)]),
            }
    finally:
        subprocess.run(["ip", "netns", "del", netns], check=False)
        files.remove()
    results["load_average_end"] = load_average()
    text = json.dumps(results, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
