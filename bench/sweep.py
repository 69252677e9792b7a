"""Full-sweep benchmarks on PostgreSQL against the simulated fleet (bench.fleet).

    .venv/bin/python -m bench.sweep --nodes 1000 --nics 16 --cold-runs 3 --warm-runs 5 \
        --churn-runs 3 --churn 0.01 --api static --json out.json

Each run calls the real inventory.services.polling.sweep_inline (thread pool of --workers) with
the real ClusterClient (against the static fake API or KMock, --api) and the real AgentClient
(bench.fleet_agent.FleetAgentClient: only the URL gains /n/<node>). Rows written are counted twice:
SyncStats.rows_written and the pg_stat_user_tables n_tup_ins+n_tup_upd+n_tup_del delta.
--api kmock also times ClusterClient.listing() against KMock alone (--listing-runs).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from bench import fleet, portal
from bench.stats import summary


def run_sweep(
    cluster_client: Any,
    agent: Any,
    workers: int,
    profile: Path | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    from inventory.services import polling

    before = portal.settled_pg_row_changes()
    load = os.getloadavg()
    cpu = _cpu_seconds()
    simulator = _simulator_cpu()
    database = portal.postgres_cpu()
    if profile is not None:
        # cProfile sees the calling thread only: profile with --workers 1 to see the per-node
        # work (the thread pool's threads are otherwise invisible to it).
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        report = profiler.runcall(
            polling.sweep_inline,
            workers=workers,
            cluster_client=cluster_client,
            agent=agent,
            profile_inline=workers == 1,
        )
        profiler.dump_stats(profile)
        pstats.Stats(str(profile), stream=sys.stderr).sort_stats("cumulative").print_stats(35)
    else:
        report = polling.sweep_inline(
            workers=workers, processes=processes, cluster_client=cluster_client, agent=agent
        )
    cpu = _cpu_seconds() - cpu
    simulator = _simulator_cpu() - simulator
    database = portal.postgres_cpu() - database
    after = portal.settled_pg_row_changes()
    stats = report.stats
    return {
        "duration": report.duration,
        "nodes": report.nodes,
        "agents_ok": report.agents_ok,
        "agents_failed": report.agents_failed,
        "rows_written": stats.rows_written,
        "pg_row_changes": after - before,
        "created": stats.created,
        "updated": stats.updated,
        "vanished": stats.vanished,
        "verdicts_changed": stats.verdicts_changed,
        "history": stats.history,
        # Node rows: a 304 still persists Node.last_contact_at once it is 5 minutes old.
        "node_rows": stats.node_rows,
        "other_rows": stats.other_rows,
        "cluster_error": report.cluster_error,
        # CPU time of the sweep's own processes (this one and the forked ones), user + system:
        # what the sweep cost the portal, whatever else the cores were busy with.
        "portal_cpu": round(cpu, 3),
        # The simulated agents and API server, on the same cores (a real fleet's agents run on
        # their own nodes): what the machine spent besides the portal and PostgreSQL.
        "simulator_cpu": round(simulator, 3),
        # PostgreSQL's processes (a backend that exited during the run is not counted).
        "postgres_cpu": round(database, 3),
        "phases": {name: round(seconds, 3) for name, seconds in report.phases.items()},
        # What reading the cluster took from the API server (clients/watch.py ReadStats).
        "cluster_read": report.cluster_read,
        "load_before": [round(x, 2) for x in load],
        "load_after": [round(x, 2) for x in os.getloadavg()],
    }


def _simulator_cpu() -> float:
    return sum(portal.process_cpu(pid) for pid in portal.FLEET_PIDS)


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _kmock(nodes: int, nics: int, agent_port: int, tmp: Path) -> tuple[subprocess.Popen, str]:
    ready = tmp / "kmock.port"
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.kmock_cluster", "--nodes", str(nodes), "--nics", str(nics)]
        + ["--agent-port", str(agent_port), "--ready-file", str(ready)],
        cwd=portal.REPO,
    )
    deadline = time.monotonic() + 300
    while not (ready.exists() and ready.read_text().strip()):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("KMock cluster did not start")
        time.sleep(0.2)
    return proc, f"http://127.0.0.1:{ready.read_text().strip()}"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="sweep benchmarks on the simulated fleet")
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--nics", type=int, default=16)
    parser.add_argument("--workers", type=int, default=8, help="threads per sweep process")
    parser.add_argument("--processes", type=int, default=1, help="sweep processes (forked)")
    parser.add_argument("--cold-runs", type=int, default=3)
    parser.add_argument("--warm-runs", type=int, default=5)
    parser.add_argument("--churn-runs", type=int, default=3)
    parser.add_argument("--churn", type=float, default=0.01)
    parser.add_argument("--api", choices=("static", "kmock"), default="static")
    parser.add_argument("--listing-runs", type=int, default=3)
    parser.add_argument("--keep", action="store_true", help="leave the last sweep's rows")
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--profile", choices=("cold", "warm", "churn"), help="cProfile the first run of a phase"
    )
    args = parser.parse_args(argv)

    tmp = Path(tempfile.mkdtemp(prefix="nicportal-bench-"))
    result: dict[str, Any] = {
        "nodes": args.nodes,
        "nics": args.nics,
        "api": args.api,
        "workers": args.workers,
        "processes": args.processes,
    }
    with portal.fleet_process(args.nodes, args.nics, tmp) as fleet_url:
        kmock_proc = None
        api_url = fleet_url
        if args.api == "kmock":
            kmock_proc, api_url = _kmock(
                args.nodes, args.nics, int(fleet_url.rsplit(":", 1)[1]), tmp
            )
        try:
            kubeconfig = fleet.write_kubeconfig(tmp / "kubeconfig", api_url)
            portal.configure(kubeconfig=str(kubeconfig))
            from bench.fleet_agent import FleetAgentClient
            from inventory.clients.cluster import ClusterClient

            cluster_client = ClusterClient(kubeconfig=str(kubeconfig), timeout=120)
            agent = FleetAgentClient.for_fleet(timeout=10)

            listings = []
            for _ in range(args.listing_runs):
                started = time.monotonic()
                listing = cluster_client.listing()
                listings.append(time.monotonic() - started)
            result["listing"] = summary(listings)
            result["listing_objects"] = {"nodes": len(listing.nodes), "pods": len(listing.pods)}
            print(f"listing ({args.api}): {result['listing']}", file=sys.stderr)

            cold = []
            for _ in range(args.cold_runs):
                portal.empty_inventory()
                prof = tmp / "cold.prof" if args.profile == "cold" and not cold else None
                cold.append(run_sweep(cluster_client, agent, args.workers, prof, args.processes))
                print(f"cold: {cold[-1]}", file=sys.stderr)
            if cold and (args.warm_runs or args.churn_runs):
                # The warm and churn runs measure a settled database, as autovacuum leaves the
                # tables once it has caught up with the cold sweep's inserts (680,000 rows at
                # 20,000 nodes): otherwise its catch-up shares the 2 cores with them.
                portal.vacuum_analyze()
            warm = []
            for _ in range(args.warm_runs):
                prof = tmp / "warm.prof" if args.profile == "warm" and not warm else None
                warm.append(run_sweep(cluster_client, agent, args.workers, prof, args.processes))
                print(f"warm: {warm[-1]}", file=sys.stderr)
            churn = []
            for seed in range(1, args.churn_runs + 1):
                request = urllib.request.Request(
                    f"{fleet_url}/control/churn?fraction={args.churn}&seed={seed}", method="POST"
                )
                with urllib.request.urlopen(request, timeout=60) as answer:
                    churned = json.load(answer)["churned"]
                prof = tmp / "churn.prof" if args.profile == "churn" and not churn else None
                run = run_sweep(cluster_client, agent, args.workers, prof, args.processes)
                run["churned_nodes"] = len(churned)
                churn.append(run)
                print(f"churn: {run}", file=sys.stderr)
            result.update(
                {
                    "cold": {"runs": cold, "duration": summary([r["duration"] for r in cold])},
                    "warm": {"runs": warm, "duration": summary([r["duration"] for r in warm])},
                    "churn": {
                        "fraction": args.churn,
                        "runs": churn,
                        "duration": summary([r["duration"] for r in churn]),
                    },
                }
            )
            if not args.keep:
                portal.empty_inventory()
        finally:
            if kmock_proc is not None:
                kmock_proc.terminate()
                kmock_proc.wait(timeout=10)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k not in ("cold", "warm", "churn")}))
    for phase in ("cold", "warm", "churn"):
        runs = result[phase]["runs"]
        print(
            f"{phase}: duration {result[phase]['duration']} rows_written="
            f"{[r['rows_written'] for r in runs]} pg_row_changes="
            f"{[r['pg_row_changes'] for r in runs]}"
        )
    os.environ.pop("KUBECONFIG", None)
    return result


if __name__ == "__main__":
    main()
