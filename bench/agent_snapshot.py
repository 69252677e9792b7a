"""Node agent benchmark: snapshot time for a namespace with 64 links, and the agent's idle RSS.

Run as root: ``.venv/bin/python bench/agent_snapshot.py [--runs 200]``. Targets: < 10 ms median
per snapshot, < 40 MB idle RSS. It creates the namespace nptest-agent-bench-<pid>, 32 veth pairs
(64 links) with addresses, runs the real agent (``python -m nodeagent``) against it on
127.0.0.1, and removes everything at the end. Traffic stays on loopback.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script from anywhere

from nodeagent import auth  # noqa: E402 - after the path is set

REPO = Path(__file__).resolve().parents[1]
NODE = "bench"
KEY = auth.derive_node_key(b"bench-agent-master-not-a-secret", cluster="bench", node=NODE)


def ip(netns: str, *args: str) -> None:
    subprocess.run(["ip", "-n", netns, *args], check=True)


def start_agent(key_file: str, *extra: str) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "nodeagent", "--listen", "127.0.0.1:0", "--key-file"]
        + [key_file, "--node-name", NODE, *extra],
        cwd=REPO,
        stderr=subprocess.PIPE,
        text=True,
    )
    for line in proc.stderr:
        match = re.search(r"event=listening .*port=(\d+)", line)
        if match:
            # Keep draining the log so the agent never blocks on a full pipe.
            subprocess.Popen(["cat"], stdin=proc.stderr, stdout=subprocess.DEVNULL)
            return proc, int(match.group(1))
    raise SystemExit("agent did not start")


def get(port: int, etag: str | None = None) -> tuple[int, str]:
    # Signed as the portal signs (the agent's check is part of what a snapshot costs).
    authorization, _ = auth.sign_request(
        [KEY],
        direction=auth.PORTAL_TO_AGENT,
        method="GET",
        authority=f"127.0.0.1:{port}",
        path="/v1/snapshot",
        node=NODE,
    )
    headers = {"Authorization": authorization}
    if etag:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/snapshot", headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=30) as response:
            response.read()
            return response.status, response.headers["ETag"]
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("ETag")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker_pids(parent: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(parent)], capture_output=True, text=True).stdout
    return [int(pid) for pid in out.split()]


def summary(name: str, samples: list[float]) -> None:
    ordered = sorted(samples)
    p95 = ordered[max(0, int(len(ordered) * 0.95) - 1)]
    print(
        f"{name:<52} median {statistics.median(ordered) * 1000:7.2f} ms   "
        f"p95 {p95 * 1000:7.2f} ms   (n={len(ordered)})"
    )


def timed(fn, runs: int) -> list[float]:
    samples = []
    for index in range(runs):
        started = time.perf_counter()
        fn(index)
        samples.append(time.perf_counter() - started)
    return samples


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    args = parser.parse_args()
    netns = f"nptest-agent-bench-{os.getpid()}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    agents: list[subprocess.Popen] = []
    try:
        ip(netns, "link", "set", "lo", "up")
        for pair in range(32):
            ip(netns, "link", "add", f"eth{pair}", "type", "veth", "peer", "name", f"sw{pair}")
            ip(netns, "link", "set", f"eth{pair}", "up")
            ip(netns, "link", "set", f"sw{pair}", "up")
            ip(netns, "addr", "add", f"10.{pair}.0.1/24", "dev", f"eth{pair}")
        with tempfile.NamedTemporaryFile("w", suffix=".key", delete=False) as handle:
            handle.write(auth.format_node_key(KEY))
        key_file = handle.name

        proc, port = start_agent(key_file, "--netns", netns)
        agents.append(proc)
        status, etag = get(port)
        assert status == 200, status
        print(f"namespace {netns}: 65 links (64 veth + lo), {args.runs} runs each")

        summary("GET /v1/snapshot, node unchanged (200)", timed(lambda i: get(port), args.runs))
        summary(
            "GET /v1/snapshot, If-None-Match (304)", timed(lambda i: get(port, etag), args.runs)
        )

        def changed(index: int) -> None:
            # An MTU change is announced by netlink: the agent must re-read everything.
            subprocess.run(["ip", "-n", netns, "link", "set", "eth0", "mtu", str(1400 + index % 2)])
            started = time.perf_counter()
            get(port)
            changed_samples.append(time.perf_counter() - started)

        changed_samples: list[float] = []
        timed(changed, min(args.runs, 100))
        summary("GET /v1/snapshot after a link change (full re-read)", changed_samples)

        time.sleep(3)
        pids = worker_pids(proc.pid)
        worker = sum(rss_mb(pid) for pid in pids)
        print(
            f"idle RSS --netns mode: agent {rss_mb(proc.pid):.1f} MB + netns worker {worker:.1f} MB"
        )

        host_proc, host_port = start_agent(key_file)
        agents.append(host_proc)
        for _ in range(20):
            get(host_port)
        time.sleep(3)
        print(f"idle RSS host mode (the DaemonSet): {rss_mb(host_proc.pid):.1f} MB")
    finally:
        for proc in agents:
            proc.terminate()
            proc.wait(timeout=10)
        subprocess.run(["ip", "netns", "del", netns], check=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
