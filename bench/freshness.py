"""Freshness in the lab: from the real host-device plugin moving a NIC into a pod (lab
create_pod() returns, the pod is Running) to the REST API listing that NIC as `pod`.

    .venv/bin/python -m bench.freshness --samples 10 --mode hints
    .venv/bin/python -m bench.freshness --samples 5 --mode polling --poll-interval 10

Parts, all real: the lab (netns nodes, KMock API, lab kubelet running /usr/lib/cni/host-device,
one nodeagent per node), gunicorn serving the portal on 127.0.0.1 (the agents POST their hints
to /api/v1/agent-hints/), a Celery worker (threads pool) on Redis, and, in polling mode, Celery
beat sweeping every --poll-interval seconds. In hints mode beat runs too, at the interval given
(default 30 s, the portal's default), so a lost hint shows up as a slow sample.
The API is read in this process through Django's test Client (knox token) every 50 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import portal
from bench.stats import summary

BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/10")
FRESH_DB = "nicportal_fresh"
NAMESPACE = "default"
NAD = "bench-nic"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate: Any, timeout: float, step: float = 0.05) -> float | None:
    """Seconds until predicate() is true, or None after timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(step)
    return None


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="freshness of pod moves in the lab")
    parser.add_argument("--samples", type=int, default=10)
    parser.add_argument("--mode", choices=("hints", "polling"), default="hints")
    parser.add_argument("--poll-interval", type=float, default=30.0)
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    from lab import control
    from lab.handle import LabHandle

    port = free_port()
    portal_url = f"http://127.0.0.1:{port}"
    name = f"bf{os.getpid() % 100000}"
    # In polling mode the agents get no portal URL: their hints go nowhere.
    state = control.up(name, portal_url=portal_url if args.mode == "hints" else None)
    lab = LabHandle(state)
    procs: list[subprocess.Popen] = []
    tmp = Path(tempfile.mkdtemp(prefix="nicportal-fresh-"))
    result: dict[str, Any] = {"mode": args.mode, "poll_interval": args.poll_interval}
    try:
        os.environ.update(
            {
                "CELERY_BROKER_URL": BROKER,
                "NICPORTAL_POLL_INTERVAL": str(args.poll_interval),
                "NICPORTAL_AGENT_MASTER_KEY": lab.agent_master_key,
                "NICPORTAL_LOG_LEVEL": "WARNING",
            }
        )
        portal.configure(
            database=FRESH_DB,
            kubeconfig=str(lab.kubeconfig),
            agent_master_key=lab.agent_master_key,
            cluster_name="lab",
        )
        portal.empty_inventory()
        import redis

        redis.Redis.from_url(BROKER).flushdb()  # no stale tasks from an earlier run

        env = {**os.environ}
        bin_dir = Path(sys.executable).parent
        procs.append(
            subprocess.Popen(
                [str(bin_dir / "gunicorn"), "nicportal.wsgi", "-b", f"127.0.0.1:{port}"]
                + ["--workers", "2", "--log-level", "warning"],
                cwd=portal.REPO,
                env=env,
            )
        )
        procs.append(
            subprocess.Popen(
                [str(bin_dir / "celery"), "-A", "nicportal", "worker", "--pool", "threads"]
                + ["--concurrency", "4", "--loglevel", "WARNING", "-n", f"bench-{name}@%h"],
                cwd=portal.REPO,
                env=env,
            )
        )
        procs.append(
            subprocess.Popen(
                [str(bin_dir / "celery"), "-A", "nicportal", "beat", "--loglevel", "WARNING"]
                + ["--schedule", str(tmp / "beat-schedule")],
                cwd=portal.REPO,
                env=env,
            )
        )
        from django.contrib.auth import get_user_model
        from django.test import Client
        from knox.models import AuthToken

        from inventory.models import Interface

        user, _ = get_user_model().objects.get_or_create(username="bench")
        _, token = AuthToken.objects.create(user)
        client = Client(HTTP_AUTHORIZATION=f"Token {token}")

        node = lab.nodes[0].name
        lab.create_nad(
            NAMESPACE,
            NAD,
            {"cniVersion": "0.3.1", "name": NAD, "type": "host-device", "device": "eth1"},
        )

        def api_state() -> str:
            answer = client.get(f"/api/v1/interfaces/?node={node}&limit=1000").json()
            states = {i["name"]: i["state"] for i in answer.get("results", [])}
            return states.get("eth1", "")

        # The first beat sweep fills the inventory (eth1 free) before any sample.
        if wait_until(lambda: api_state() == "free", 120, 0.5) is None:
            raise SystemExit("the portal never listed eth1 as free: is the worker running?")
        samples: list[float] = []
        misses = 0
        for number in range(args.samples):
            pod = f"fresh-{number}"
            created = lab.create_pod(NAMESPACE, pod, node, f"{NAMESPACE}/{NAD}@net1", wait=True)
            if created.get("status", {}).get("phase") != "Running":
                raise SystemExit(f"pod {pod} did not start: {lab.pod_events(NAMESPACE, pod)}")
            took = wait_until(lambda: api_state() == "pod", args.timeout)
            if took is None:
                misses += 1
                print(f"sample {number}: eth1 is {api_state()!r}, not pod", file=sys.stderr)
            else:
                samples.append(took)
            print(f"sample {number}: {took}", file=sys.stderr)
            lab.delete_pod(NAMESPACE, pod)
            wait_until(lambda: api_state() == "free", args.timeout)
            time.sleep(1.1)  # past the hint debounce (1 s) before the next move
        result.update(
            {
                "samples": [round(s, 3) for s in samples],
                "seconds": summary(samples),
                "missed": misses,
                "timeout": args.timeout,
                "interfaces": Interface.objects.count(),
            }
        )
        AuthToken.objects.filter(user=user).delete()
    finally:
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        lab.close()
        control.down(name)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
