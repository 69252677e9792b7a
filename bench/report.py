"""Render BENCHMARKS.md from the JSON files scripts/bench leaves in its output folder.

.venv/bin/python -m bench.report var/bench > BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

TARGETS = {
    "warm": 5.0,  # s, 5,000 nodes
    "cold": 15.0,  # s, 5,000 nodes
    "warm_20k": 10.0,  # s, 20,000 nodes
    "api_p95_ms": 50.0,
    "fleet_ms": 100.0,
    "deep_over_first": 1.5,  # deep page's median over the first page's
    "freshness_p95": 2.0,  # s, with hints
    "live_count_p95_ms": 100.0,  # the request form's live count, 80,000 NICs
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


def _mean_load(runs: list[dict[str, Any]]) -> str:
    loads = [r["load_before"][0] for r in runs if r.get("load_before")]
    return f"{min(loads):.1f}–{max(loads):.1f}" if loads else "?"


def _sweep_details(data: dict[str, Any]) -> list[str]:
    """How one fleet size's sweeps ran (processes, CPU, phases, what they read from the API)
    and its targets."""
    cold, warm = data["cold"]["runs"], data["warm"]["runs"]
    lines = ["", f"{data['nodes']:,} × {data['nics']}:"]
    lines.append(
        f"- {data.get('processes', 1)} sweep process(es) × {data.get('workers', 8)} threads; "
        f"1-minute load average at the start of the runs: cold {_mean_load(cold)}, warm "
        f"{_mean_load(warm)}, churn {_mean_load(data['churn']['runs'])}"
    )
    for name, runs in (("cold", cold), ("warm", warm)):
        if not runs or "phases" not in runs[0]:
            continue
        per_node = [r["portal_cpu"] / max(1, r["nodes"]) * 1000 for r in runs]
        lines.append(
            f"- {name}: portal CPU {[r['portal_cpu'] for r in runs]} s "
            f"({min(per_node):.2f}–{max(per_node):.2f} ms per node); simulator CPU on the same "
            f"cores {[r.get('simulator_cpu', '-') for r in runs]} s; PostgreSQL CPU "
            f"{[r.get('postgres_cpu', '-') for r in runs]} s; phases "
            f"{[r['phases'] for r in runs]}; read from the API {[r['cluster_read'] for r in runs]}"
        )
    if data["nodes"] >= 20000:
        median = data["warm"]["duration"]["median"] if warm else None
        writes = any(r["rows_written"] or r["pg_row_changes"] for r in warm)
        if median is not None:
            lines.append(
                f"- Targets at {data['nodes']:,} nodes: warm median {median} s "
                f"{_verdict(median, TARGETS['warm_20k'], 's')}; zero writes on warm sweeps "
                f"{'**missed**' if writes else 'met (both counts)'}."
            )
    elif data["nodes"] >= 5000:
        parts = []
        if warm:
            median = data["warm"]["duration"]["median"]
            writes = any(r["rows_written"] or r["pg_row_changes"] for r in warm)
            parts.append(
                f"warm median {median} s {_verdict(median, TARGETS['warm'], 's')}; zero writes "
                f"on warm sweeps {'**missed**' if writes else 'met (both counts)'}"
            )
        if cold:
            median = data["cold"]["duration"]["median"]
            parts.append(f"cold median {median} s {_verdict(median, TARGETS['cold'], 's')}")
        lines.append(f"- Targets at {data['nodes']:,} nodes: " + "; ".join(parts) + ".")
    return lines


def sweep_section(folder: Path) -> list[str]:
    lines = [
        "## Full sweeps (PostgreSQL, simulated fleet)",
        "",
        "Median / p95 over the runs (p95 is nearest-rank: with fewer than 20 runs it is the "
        "slowest run). `rows` is SyncStats.rows_written per run; `pg` is the independent count: "
        "the delta of n_tup_ins + n_tup_upd + n_tup_del over pg_stat_user_tables, read after every "
        "sweep connection has exited (pg also counts the Cluster row's get_or_create/save, which "
        "SyncStats does not). The warm and churn runs start on a settled database: after the "
        "last cold run, VACUUM ANALYZE (as autovacuum leaves the tables once it has caught up "
        "with the cold sweep's inserts, instead of catching up during the warm runs).",
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
    for path in results:
        lines += _sweep_details(json.loads(path.read_text()))
    lines.append("")
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
    lines = ["## API and fleet view (server time)", ""]
    found = [json.loads(path.read_text()) for path in folder.glob("api*.json")]
    if not found:
        return [*lines, "Not measured.", ""]
    for data in sorted(found, key=lambda d: d["interfaces"]):
        lines += _api_size(data)
    return lines


def _quiet(data: dict[str, Any]) -> str:
    wait = data.get("quiet_wait_s")
    return "." if wait is None else f" (it began when the CPUs were 90% idle, after {wait:g} s)."


def _api_size(data: dict[str, Any]) -> list[str]:
    released, load = data.get("released_reservations"), data.get("load")
    depth = (
        f" Deep pages start at row {data['deep_offset']:,} (`state=free`: "
        f"{data['deep_free_offset']:,}), by `offset` or by a keyset `cursor` at that row."
        if "deep_offset" in data
        else ""
    )
    lines = [
        f"{data['interfaces']:,} interfaces ({data['free']:,} free)"
        + (f", {released:,} released reservations" if released is not None else "")
        + ". Server time = one request "
        "through Django's test Client in the benchmark process (all middleware, knox token or "
        "session auth, view, queries, rendering; no socket, no WSGI server), after VACUUM "
        "ANALYZE." + depth,
        *(
            [
                "",
                f"Load average during this part: {' '.join(f'{x:.2f}' for x in load['before'])} "
                f"at its start, {' '.join(f'{x:.2f}' for x in load['after'])} at its end"
                + _quiet(data),
            ]
            if load
            else []
        ),
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
    ratios = data.get("ratios") or []
    if ratios:
        lines += [
            "",
            f"Deep page over first page (medians; target ≤ {TARGETS['deep_over_first']:g}× with "
            f"{released or 0:,} released reservations in the database):",
            "",
        ]
        for pair in ratios:
            met = pair["ratio"] <= TARGETS["deep_over_first"]
            lines.append(
                f"- {pair['deep']} ÷ {pair['first']}: {pair['ratio']}× — "
                + ("meets" if met else "**misses**")
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


def requests_section(folder: Path) -> list[str]:
    data = _load(folder, "requests.json")
    lines = ["## Reservation requests (server time, PostgreSQL)", ""]
    if not data:
        return [*lines, "Not measured.", ""]
    load = data["load"]
    lines += [
        f"{data['interfaces']:,} interfaces. Server time = one POST through Django's test Client "
        "in the benchmark process (all middleware, session or knox token auth, view, queries, "
        "rendering; no socket, no WSGI server), after VACUUM ANALYZE. The live count is the "
        "form's htmx POST to /requests/preview/ (the count fragment); a granted request's "
        "reservations are released after each run, outside the timing. Load average: "
        f"{' '.join(f'{x:.2f}' for x in load['before'])} at the start, "
        f"{' '.join(f'{x:.2f}' for x in load['after'])} at the end (2 shared cores).",
        "",
        "| request | median / p95 | queries | target |",
        "|---|---|---|---|",
    ]
    for label, case in data["cases"].items():
        target = ""
        if label.startswith("live count"):
            target = "p95 " + _verdict(case["ms"]["p95"], TARGETS["live_count_p95_ms"], "ms")
        lines.append(f"| {label} | {_fmt(case['ms'], 'ms')} | {case['queries']} | {target} |")
    floor = data.get("floor")
    if floor:
        lines += [
            "",
            "For scale, at the same load: one `SELECT COUNT(*)` of the NICs a request considers, "
            f"straight through the connection, took {_fmt(floor['ms'], 'ms')}; every live count "
            "makes one pass of that size (the counts after each constraint and per node).",
        ]
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
        "in-memory index warm. `reads` = the SELECTs of the inventory; a denial's record is "
        "queued for the process's writer thread and written off the response path (its time "
        "per record below the table, every case's records counted after it); the index "
        f"itself (nodes, NADs, team namespaces) builds in {build['median']} ms median "
        f"(n={build['n']}), in a background thread. The wall time includes waiting for a CPU: "
        "the load average was "
        f"{' '.join(data.get('load_average_at_start', ['?']))} at the start and "
        f"{' '.join(data.get('load_average_at_end', ['?']))} at the end, on "
        "2 cores; the CPU time is this thread's own.",
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
    written = {
        label: case["records"] for label, case in data["cases"].items() if case.get("records")
    }
    if written:
        lines += ["", "The record writer (off the response path), per case of denials:", ""]
        lines += [
            f"- {label}: {r['records']} records in {r['batches']} batches, "
            f"{r['ms_per_record']} ms writing per record; {r['flush_after_ms']} ms left to "
            "write after the last review"
            for label, r in written.items()
        ]
    after_change = {
        label: case for label, case in data["cases"].items() if "after a change" in label
    }
    fleet_wide = {
        label: case
        for label, case in data["cases"].items()
        if ("fleet-wide (" in label or "candidate" in label) and label not in after_change
    }
    everyday = [
        case
        for label, case in data["cases"].items()
        if label not in fleet_wide and label not in after_change
    ]

    def worst(cases: list[dict]) -> tuple[float, float]:
        return (
            max((c.get("cpu_ms") or {}).get("p99", 0) for c in cases),
            max(c["ms"]["p99"] for c in cases),
        )

    def verdict(value: float) -> str:
        return "meets it" if value < target else f"**misses** it ({value / target:.1f}×)"

    worst_cpu, worst_wall = worst(everyday)
    lines += [
        "",
        f"Goal p99 < {target:g} ms server time for the everyday reviews (pods pinned to a node, "
        f"NICPortal-built NADs, the seed's NAD): worst CPU p99 {worst_cpu} ms "
        f"{verdict(worst_cpu)}; worst wall p99 {worst_wall} ms {verdict(worst_wall)}.",
    ]
    if fleet_wide:
        fleet_cpu, fleet_wall = worst(list(fleet_wide.values()))
        lines += [
            "",
            "The fleet-wide cases (a pod that may land on any of 5,000 nodes, a NAD with no node "
            "list) are judged on device classes (rules/admission/fleet.py), read once and "
            "remembered until PostgreSQL notifies a committed change to the tables they are "
            "read from (read/changes.py): a repeated review is answered from memory. Worst CPU p99 "
            f"{fleet_cpu} ms {verdict(fleet_cpu)}; worst wall p99 {fleet_wall} ms "
            f"{verdict(fleet_wall)}.",
        ]
    if after_change:
        change_cpu, change_wall = worst(list(after_change.values()))
        answered: dict[str, int] = {}
        for case in after_change.values():
            for result, count in (case.get("class_cache") or {}).items():
                answered[result] = answered.get(result, 0) + count
        how = ", ".join(f"{result} {count}" for result, count in sorted(answered.items()))
        lines += [
            "",
            "The first fleet-wide review after a committed change reads the rows that change "
            "named and moves them between the remembered classes (read/classes.py; each timed "
            "review follows a committed write to a row its selector picks, and its "
            f"notification{'; answered: ' + how if how else ''}): worst CPU p99 "
            f"{change_cpu} ms {verdict(change_cpu)}; worst wall p99 {change_wall} ms "
            f"{verdict(change_wall)} (bench/ANALYSIS.md).",
        ]
        regroup = data.get("class_regroup_ms")
        if regroup:
            lines += [
                "",
                f"A patch's own Python work on the {regroup['rows']} rows of a fleet-wide "
                f"selector (one row moved, the classes built): median {regroup['patch']['median']}"
                f" ms, p99 {regroup['patch']['p99']} ms; grouping every row again instead: median "
                f"{regroup['all_rows']['median']} ms, p99 {regroup['all_rows']['p99']} ms.",
            ]
    return [*lines, ""]


AGENT_TARGETS = {"change_ms": 10.0, "rss_mb": 40.0}


def agent_section(folder: Path) -> list[str]:
    data = _load(folder, "agent.json")
    lines = ["## Node agent (bench/agent_snapshot.py)", ""]
    if not data:
        return [*lines, "Not measured.", ""]
    columns = [
        (label, mode)
        for label in ("baseline", "current")
        if label in data["agents"]
        for mode in ("netns", "host")
    ]
    names = {"baseline": "before", "current": "now"}
    modes = {"netns": "`--netns` mode", "host": "host mode"}
    header = [
        f"{names[label]} ({data['revisions'][label]}), {modes[mode]}" for label, mode in columns
    ]
    lines += [
        f"{data['links']} links (veth pairs with addresses, and lo) in one namespace. Each "
        "request is `GET /v1/snapshot` on a new TCP connection, median / p95 in ms; the requests "
        "after a change are sent as soon as `ip` returned, and every answer was checked to show "
        "its change. `--netns` mode is the lab's (the agent in the host namespace, its worker "
        "process in the node's); host mode is the DaemonSet's. Runs interleaved round by round; "
        f"load average {' '.join(map(str, data['load_average_start']))} at the start, "
        f"{' '.join(map(str, data['load_average_end']))} at the end.",
        "",
        "| request | " + " | ".join(header) + " |",
        "|---|" + "---|" * len(columns),
    ]
    scenarios = list(data["agents"]["current"]["host"]["scenarios"])
    for name in scenarios:
        cells = [
            _fmt_ms(data["agents"][label][mode]["scenarios"].get(name)) for label, mode in columns
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    stale = [str(data["agents"][label][mode]["stale_answers"]) for label, mode in columns]
    lines.append("| stale answers after a change | " + " | ".join(stale) + " |")
    rss = []
    for label, mode in columns:
        entry = data["agents"][label][mode]
        worker = f" + worker {entry['worker_rss_mb']:.1f}" if mode == "netns" else ""
        rss.append(f"{entry['rss_mb']:.1f}{worker}")
    lines += ["| idle RSS, MB | " + " | ".join(rss) + " |", ""]
    current = data["agents"]["current"]
    worst = max(
        (entry["scenarios"][name]["median"], name, mode)
        for mode, entry in current.items()
        for name in entry["scenarios"]
        if name.startswith("after")
    )
    host_rss = current["host"]["rss_mb"]
    worst_rss = max([host_rss] + [current["netns"]["worker_rss_mb"]])
    lines += [
        f"Targets: a change answered in ≤ {AGENT_TARGETS['change_ms']:g} ms — the slowest median "
        f"after a change is {worst[0]} ms ({worst[1].removeprefix('after: ')}, {modes[worst[2]]}): "
        f"{_verdict(worst[0], AGENT_TARGETS['change_ms'], 'ms')}. Idle RSS ≤ "
        f"{AGENT_TARGETS['rss_mb']:g} MB — host mode {host_rss:.1f} MB, the netns worker "
        f"{current['netns']['worker_rss_mb']:.1f} MB: "
        f"{_verdict(round(worst_rss, 1), AGENT_TARGETS['rss_mb'], 'MB')}.",
        "",
    ]
    return lines


def _fmt_ms(summary: dict[str, Any] | None) -> str:
    if not summary or not summary.get("n"):
        return "—"
    return f"{summary['median']} / {summary['p95']}"


def sidebyside_section(folder: Path) -> list[str]:
    data = _load(folder, "sidebyside.json")
    lines = ["## Side by side (bench/sidebyside.py, wrk)", ""]
    if not data:
        return [*lines, "Not measured.", ""]
    settings = data["settings"]
    targets = list(data["targets"])
    lines += [
        f"`wrk -t{settings['threads']} -c{settings['connections']} -d{settings['duration']}s "
        f"--latency`, {settings['rounds']} interleaved rounds per scenario and target (req/s: "
        "median of the rounds; latency: median of each round's percentile, ms). Scenario file "
        f"`{data['scenario_file']}`; {data.get('interfaces') or '?'} interfaces in the served "
        "portal's database.",
        "",
        *[f"- `{name}`: {description}" for name, description in data["targets"].items()],
        "",
        "| scenario | "
        + " | ".join(f"{name} req/s (p50 / p99 ms)" for name in targets)
        + (f" | {targets[0]} ÷ {targets[1]} |" if len(targets) == 2 else " |"),
        "|---|" + "---|" * (len(targets) + (1 if len(targets) == 2 else 0)),
    ]
    for scenario in data["scenarios"]:
        cells = []
        rates = []
        for name in targets:
            result = scenario["results"].get(name)
            if not result:
                cells.append("—")
            elif "skipped" in result:
                cells.append(f"skipped: {result['skipped']}")
            else:
                errors = result["non_2xx"] + result["socket_errors"]
                cells.append(
                    f"{result['requests_per_second']} ({result['latency_ms']['p50']} / "
                    f"{result['latency_ms']['p99']})" + (f", **{errors} errors**" if errors else "")
                )
                rates.append(result["requests_per_second"])
        ratio = ""
        if len(targets) == 2:
            ratio = f" {rates[0] / rates[1]:.2f}× |" if len(rates) == 2 and rates[1] else " — |"
        lines.append(f"| {scenario['name']} | " + " | ".join(cells) + " |" + ratio)
    return [*lines, ""]


# Data sections in their order: (heading without its parenthesis, renderer, data files).
SECTIONS = [
    ("## Full sweeps", sweep_section, ("sweep-*-static.json", "sweep-*-kmock.json")),
    ("## API and fleet view", api_section, ("api*.json",)),
    ("## Freshness in the lab", freshness_section, ("freshness-*.json",)),
    ("## NAD build + lint", nad_section, ("nad.json",)),
    ("## Admission webhook", webhook_section, ("webhook.json",)),
    ("## Reservation requests", requests_section, ("requests.json",)),
    ("## Node agent", agent_section, ("agent.json",)),
    ("## Side by side", sidebyside_section, ("sidebyside.json",)),
]
PREAMBLE = [
    "# NICPortal benchmarks",
    "",
    "Written by `make bench` (scripts/bench → bench/report.py); do not edit by hand: the "
    "analysis of the misses lives in bench/ANALYSIS.md and is copied in below. How to run them, "
    "re-measure a few sections, or compare side by side with a peer: bench/README.md.",
    "",
]


def _key(heading: str) -> str:
    return heading.split(" (", 1)[0].strip()


def _read(folder: Path, name: str) -> str:
    path = folder / name
    return path.read_text().strip() if path.exists() else ""


def _measured(folder: Path, patterns: tuple[str, ...]) -> bool:
    return any(any(folder.glob(pattern)) for pattern in patterns)


def _analysis() -> list[str]:
    analysis = Path(__file__).with_name("ANALYSIS.md")
    return [analysis.read_text().strip(), ""] if analysis.exists() else []


def full_report(folder: Path) -> str:
    lines = [*PREAMBLE, "## Machine", "", "```", _read(folder, "machine.txt"), "```", ""]
    for index, (_heading, render, _patterns) in enumerate(SECTIONS):
        lines += render(folder)
        if index == 0:
            lines.append("")
    lines += _analysis()
    lines += ["## Exact commands", "", "```", _read(folder, "commands.txt"), "```", ""]
    return "\n".join(lines)


def _chunks(text: str) -> list[tuple[str, list[str]]]:
    """("preamble" or a level-2 heading's key, its lines) in the order of the document."""
    chunks: list[tuple[str, list[str]]] = [("preamble", [])]
    for line in text.splitlines():
        if line.startswith("## "):
            chunks.append((_key(line), []))
        chunks[-1][1].append(line)
    return chunks


def _later_run(lines: list[str], label: str, block: list[str]) -> list[str]:
    """``lines`` (a Machine or Exact commands section) with this run's block appended, and the
    blocks of earlier runs whose every section this run measured again dropped (a block that
    still holds another section's run is kept)."""
    marker = f"Re-measured later: {label}"
    measured = set(label.split(", "))
    kept: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        end = index + 1
        if line.startswith("Re-measured later: "):
            while end < len(lines) and not lines[end].startswith("Re-measured later: "):
                end += 1
            if set(line.removeprefix("Re-measured later: ").split(", ")) <= measured:
                index = end
                continue
        kept += lines[index:end]
        index = end
    lines = kept
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return [*lines, "", marker, "", *block, ""]


def updated_report(folder: Path, previous: str) -> str:
    """``previous`` with the sections measured in ``folder`` replaced (or added), the others
    kept as they were, the analysis copied in afresh, and this run's machine, load and
    commands added under Machine and Exact commands."""
    fresh = {
        key: render(folder) for key, render, patterns in SECTIONS if _measured(folder, patterns)
    }
    if not fresh:
        raise SystemExit(f"{folder}: no benchmark results to update from")
    label = ", ".join(key.removeprefix("## ") for key in fresh)
    known = {key for key, _render, _patterns in SECTIONS}
    out: list[str] = []
    analysis_done = False
    for key, lines in _chunks(previous):
        if key == "## Machine":
            block = ["```", _read(folder, "machine.txt"), "```"]
            out += _later_run(lines, label, block)
        elif key == "## Exact commands":
            for pending in list(fresh):
                out += fresh.pop(pending)
            if not analysis_done:
                out += _analysis()
                analysis_done = True
            block = ["```", _read(folder, "commands.txt"), "```"]
            out += _later_run(lines, label, block)
        elif key in known:
            out += fresh.pop(key, lines)
        elif key == "preamble":
            out += PREAMBLE
        else:  # the analysis copied from bench/ANALYSIS.md last time: copy it again
            for pending in list(fresh):
                out += fresh.pop(pending)  # sections the previous report did not have yet
            if not analysis_done:
                out += _analysis()
                analysis_done = True
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render BENCHMARKS.md from make bench's JSON")
    parser.add_argument("folder", nargs="?", default="var/bench", type=Path)
    parser.add_argument(
        "--update",
        type=Path,
        help="replace only the sections measured in FOLDER in this report, keep the rest",
    )
    args = parser.parse_args(argv)
    if args.update:
        sys.stdout.write(updated_report(args.folder, args.update.read_text()))
    else:
        sys.stdout.write(full_report(args.folder))


if __name__ == "__main__":
    main()
