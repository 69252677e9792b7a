"""Render BENCHMARKS.md from the JSON files scripts/bench leaves in its output folder.

.venv/bin/python -m bench.report var/bench > BENCHMARKS.md
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGETS = {
    "warm": 5.0,  # s, 5,000 nodes
    "cold": 30.0,  # s, 5,000 nodes
    "api_p95_ms": 50.0,
    "fleet_ms": 100.0,
    "freshness_p95": 2.0,  # s, with hints
}


def _load(folder: Path, name: str) -> Any:
    path = folder / name
    return json.loads(path.read_text()) if path.exists() else None


def _fmt(summary: dict[str, Any] | None, unit: str = "s") -> str:
    if not summary or not summary.get("n"):
        return "not measured"
    return f"{summary['median']} / {summary['p95']} {unit} (n={summary['n']})"


def _verdict(value: float, target: float, unit: str) -> str:
    if value <= target:
        return f"meets ≤ {target:g} {unit}"
    return f"**misses** ≤ {target:g} {unit} by {value - target:.3g} {unit} ({value / target:.1f}×)"


def sweep_section(folder: Path) -> list[str]:
    lines = [
        "## Full sweeps (PostgreSQL, simulated fleet)",
        "",
        "Median / p95 over the runs (p95 is nearest-rank: with fewer than 20 runs it is the "
        "slowest run). `rows` is SyncStats.rows_written per run; `pg` is the independent count: "
        "the delta of n_tup_ins + n_tup_upd + n_tup_del over pg_stat_user_tables, read after every "
        "sweep connection has exited (pg also counts the Cluster row's get_or_create/save, which "
        "SyncStats does not).",
        "",
        "| nodes × NICs | listing (static API) | cold sweep | warm sweep | warm rows / pg "
        "| 1% churn sweep | churn rows / pg (churned nodes; node rows) |",
        "|---|---|---|---|---|---|---|",
    ]
    results = sorted(folder.glob("sweep-*-static.json"), key=lambda p: int(p.stem.split("-")[1]))
    for path in results:
        data = json.loads(path.read_text())
        warm_rows = [r["rows_written"] for r in data["warm"]["runs"]]
        warm_pg = [r["pg_row_changes"] for r in data["warm"]["runs"]]
        churn = data["churn"]["runs"]
        lines.append(
            f"| {data['nodes']:,} × {data['nics']} | {_fmt(data['listing'])} "
            f"| {_fmt(data['cold']['duration'])} | {_fmt(data['warm']['duration'])} "
            f"| {warm_rows} / {warm_pg} | {_fmt(data['churn']['duration'])} "
            f"| {[r['rows_written'] for r in churn]} / {[r['pg_row_changes'] for r in churn]} "
            f"({[r['churned_nodes'] for r in churn]}; node rows "
            f"{[r.get('node_rows', '?') for r in churn]}) |"
        )
    big = [json.loads(p.read_text()) for p in results if json.loads(p.read_text())["nodes"] >= 5000]
    if big:
        data = big[-1]
        warm, cold = data["warm"]["duration"]["median"], data["cold"]["duration"]["median"]
        writes = any(r["rows_written"] or r["pg_row_changes"] for r in data["warm"]["runs"])
        lines += [
            "",
            f"Targets at {data['nodes']:,} nodes: warm median {warm} s "
            f"{_verdict(warm, TARGETS['warm'], 's')}; zero writes on warm sweeps "
            f"{'**missed**' if writes else 'met (both counts)'}; cold median {cold} s "
            f"{_verdict(cold, TARGETS['cold'], 's')}.",
        ]
    kmock = sorted(folder.glob("sweep-*-kmock.json"), key=lambda p: int(p.stem.split("-")[1]))
    if kmock:
        lines += [
            "",
            "ClusterClient.listing() (nodes, all pods, NADs, events) against KMock 0.8 "
            "(lab.kube_api's emulator, same objects) vs the static fake API:",
            "",
            "| nodes | KMock listing | objects |",
            "|---|---|---|",
        ]
        for path in kmock:
            data = json.loads(path.read_text())
            lines.append(
                f"| {data['nodes']:,} | {_fmt(data['listing'])} | {data.get('listing_objects')} |"
            )
    return lines


def api_section(folder: Path) -> list[str]:
    data = _load(folder, "api.json")
    lines = ["## API and fleet view (server time)", ""]
    if not data:
        return [*lines, "Not measured.", ""]
    lines += [
        f"{data['interfaces']:,} interfaces ({data['free']:,} free). Server time = one request "
        "through Django's test Client in the benchmark process (all middleware, knox token or "
        "session auth, view, queries, rendering; no socket, no WSGI server), after ANALYZE.",
        "",
        "| request | median / p95 | queries | target |",
        "|---|---|---|---|",
    ]
    for label, case in data["cases"].items():
        if "error" in case:
            lines.append(f"| {label} `{case['url']}` | not measured: {case['error']} | | |")
            continue
        if label.startswith("fleet"):
            # The target does not say median or p95: both are judged.
            verdict = (
                f"median {_verdict(case['ms']['median'], TARGETS['fleet_ms'], 'ms')}; "
                f"p95 {_verdict(case['ms']['p95'], TARGETS['fleet_ms'], 'ms')}"
            )
        else:
            verdict = "p95 " + _verdict(case["ms"]["p95"], TARGETS["api_p95_ms"], "ms")
        lines.append(
            f"| {label} `{case['url']}` | {_fmt(case['ms'], 'ms')} | {case['queries']} "
            f"| {verdict} |"
        )
    return [*lines, ""]


def freshness_section(folder: Path) -> list[str]:
    lines = ["## Freshness in the lab", ""]
    for mode in ("hints", "polling"):
        data = _load(folder, f"freshness-{mode}.json")
        if not data:
            lines.append(f"- {mode}: not measured")
            continue
        verdict = ""
        if mode == "hints" and data["seconds"].get("n"):
            verdict = " — " + _verdict(data["seconds"]["p95"], TARGETS["freshness_p95"], "s")
        lines.append(
            f"- {mode} (beat interval {data['poll_interval']:g} s): {_fmt(data['seconds'])}, "
            f"missed {data['missed']} (timeout {data['timeout']:g} s); samples {data['samples']}"
            f"{verdict}"
        )
    return [*lines, ""]


def nad_section(folder: Path) -> list[str]:
    data = _load(folder, "nad.json")
    lines = ["## NAD build + lint (pure functions)", ""]
    if not data:
        return [*lines, "Not measured.", ""]
    lines += ["| case | median / p95 |", "|---|---|"]
    lines += [f"| {label} | {_fmt(value, 'ms')} |" for label, value in data.items()]
    return [*lines, ""]


def webhook_section(folder: Path) -> list[str]:
    data = _load(folder, "webhook.json")
    lines = ["## Admission webhook (server time, PostgreSQL)", ""]
    if not data:
        return [*lines, "Not measured.", ""]
    build = data["index_build_ms"]
    lines += [
        f"{data['nodes']:,} nodes, {data['interfaces']:,} interfaces. One POST /validate through "
        "Django's test Client with the webhook server's settings (no socket, no TLS); the "
        "in-memory index warm. `reads` = the SELECTs of the inventory (a denial's record adds "
        "BEGIN, SET LOCAL, UPDATE, COMMIT); the index "
        f"itself (nodes, NADs, team namespaces) builds in {build['median']} ms median "
        f"(n={build['n']}), in a background thread. The wall time includes waiting for a CPU: "
        "the load average was "
        f"{' '.join(data.get('load_average_at_start', ['?']))} at the start and "
        f"{' '.join(data.get('load_average_at_end', ['?']))} at the end, on "
        "2 cores shared with other test runs; the CPU time is this thread's own.",
        "",
        "| review | wall median / p95 / p99 ms | CPU median / p99 ms | answer | queries (reads) |",
        "|---|---|---|---|---|",
    ]
    target = data.get("target_ms", 10.0)
    for label, case in data["cases"].items():
        ms = case["ms"]
        cpu = case.get("cpu_ms") or {"median": "-", "p99": "-"}
        lines.append(
            f"| {label} | {ms['median']} / {ms['p95']} / {ms['p99']} (n={ms['n']}) | "
            f"{cpu['median']} / {cpu['p99']} | {'allowed' if case['allowed'] else 'denied'} | "
            f"{case['queries']} ({case['reads']}) |"
        )
    everyday = [
        case
        for label, case in data["cases"].items()
        if "fleet-wide (" not in label and "candidate" not in label
    ]
    worst = max(c["ms"]["p99"] for c in everyday)
    worst_cpu = max((c.get("cpu_ms") or {}).get("p99", 0) for c in everyday)

    def verdict(value: float) -> str:
        return "meets it" if value < target else f"**misses** it ({value / target:.1f}×)"

    lines += [
        "",
        f"Goal p99 < {target:g} ms server time for the everyday reviews (pods pinned to a node, "
        f"NICPortal-built NADs, the seed's NAD): worst CPU p99 {worst_cpu} ms "
        f"{verdict(worst_cpu)}; "
        f"worst wall p99 {worst} ms {verdict(worst)} on this shared machine. The fleet-wide "
        "cases (a pod that may land on any of 5,000 nodes, a NAD with no node list) read and "
        "lint one device per node and cost O(nodes).",
        "",
    ]
    return lines


def agent_section(folder: Path) -> list[str]:
    path = folder / "agent_snapshot.txt"
    text = path.read_text().strip() if path.exists() else "not measured"
    return [
        "## Node agent (bench/agent_snapshot.py, the agent engineer's)",
        "",
        "```",
        text,
        "```",
        "",
    ]


def main() -> None:
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "var/bench")
    machine = (
        (folder / "machine.txt").read_text().strip() if (folder / "machine.txt").exists() else ""
    )
    commands = (
        (folder / "commands.txt").read_text().strip() if (folder / "commands.txt").exists() else ""
    )
    analysis = Path(__file__).with_name("ANALYSIS.md")
    lines = [
        "# NICPortal benchmarks",
        "",
        "Written by `make bench` (scripts/bench → bench/report.py); do not edit by hand: the "
        "analysis of the misses lives in bench/ANALYSIS.md and is copied in below.",
        "",
        "## Machine",
        "",
        "```",
        machine,
        "```",
        "",
        *sweep_section(folder),
        "",
        *api_section(folder),
        *freshness_section(folder),
        *nad_section(folder),
        *webhook_section(folder),
        *agent_section(folder),
    ]
    if analysis.exists():
        lines += [analysis.read_text().strip(), ""]
    lines += ["## Exact commands", "", "```", commands, "```", ""]
    sys.stdout.write("\n".join(lines))


if __name__ == "__main__":
    main()
