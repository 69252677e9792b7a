"""bench/report.py's partial update: only the measured sections change, the rest stays."""

from __future__ import annotations

import json

from bench import report

PREVIOUS = """# NICPortal benchmarks

Written by `make bench`.

## Machine

```
the full run's machine
```

## API and fleet view (server time)

kept as it was

## Node agent (bench/agent_snapshot.py, an older heading)

old agent figures

## What the simulator is, honestly labelled

an old copy of the analysis

## Exact commands

```
the full run's commands
```
"""

SCENARIO = {"n": 10, "median": 2.5, "p95": 4.0, "min": 2.0, "max": 4.5}
AGENT = {
    "links": 65,
    "revisions": {"current": "abc1234"},
    "load_average_start": [1.0, 1.1, 1.2],
    "load_average_end": [1.3, 1.4, 1.5],
    "agents": {
        "current": {
            mode: {
                "scenarios": {"unchanged (200)": SCENARIO, "after: MTU change": SCENARIO},
                "stale_answers": 0,
                "rss_mb": 24.0,
                "worker_rss_mb": 15.0 if mode == "netns" else 0.0,
            }
            for mode in ("netns", "host")
        }
    },
}


def measured_folder(tmp_path):
    (tmp_path / "agent.json").write_text(json.dumps(AGENT))
    (tmp_path / "machine.txt").write_text("the later run's machine, load average 1.0")
    (tmp_path / "commands.txt").write_text("bench/agent_snapshot.py")
    return tmp_path


def test_an_update_replaces_only_the_measured_sections(tmp_path):
    text = report.updated_report(measured_folder(tmp_path), PREVIOUS)
    assert "old agent figures" not in text and "an older heading" not in text
    assert "| after: MTU change | 2.5 / 4.0 | 2.5 / 4.0 |" in text
    assert "meets ≤ 10 ms" in text and "meets ≤ 40 MB" in text
    assert "kept as it was" in text  # a section this run did not measure
    assert "the full run's machine" in text and "the later run's machine" in text
    assert "Re-measured later: Node agent" in text
    assert "the full run's commands" in text and "bench/agent_snapshot.py" in text
    assert "an old copy of the analysis" not in text  # bench/ANALYSIS.md is copied afresh


def test_updating_twice_with_the_same_run_changes_nothing(tmp_path):
    folder = measured_folder(tmp_path)
    once = report.updated_report(folder, PREVIOUS)
    assert report.updated_report(folder, once) == once
    assert once.count("Re-measured later: Node agent") == 2  # Machine and Exact commands


def test_a_missed_target_says_by_how_much(tmp_path):
    slow = json.loads(json.dumps(AGENT))
    slow["agents"]["current"]["host"]["scenarios"]["after: MTU change"]["median"] = 25.0
    (tmp_path / "agent.json").write_text(json.dumps(slow))
    lines = "\n".join(report.agent_section(tmp_path))
    assert "**misses** ≤ 10 ms by 15 ms (2.5×)" in lines


def test_the_requests_section_judges_the_live_counts_against_their_target(tmp_path):
    fast = {"n": 30, "median": 40.0, "p95": 90.0, "min": 30.0, "max": 95.0}
    slow = {"n": 30, "median": 300.0, "p95": 450.0, "min": 200.0, "max": 500.0}
    (tmp_path / "requests.json").write_text(
        json.dumps(
            {
                "interfaces": 79900,
                "cases": {
                    "live count: any 2": {"ms": fast, "queries": 6},
                    "live count: refused": {"ms": slow, "queries": 7},
                    "granted request: 2 on one node (API)": {"ms": slow, "queries": 88},
                },
                "floor": {"ms": fast},
                "load": {"before": [1.0, 2.0, 3.0], "after": [4.0, 5.0, 6.0]},
            }
        )
    )
    text = "\n".join(report.requests_section(tmp_path))
    assert "| live count: any 2 | 40.0 / 90.0 ms (n=30) | 6 | p95 meets ≤ 100 ms |" in text
    assert "| live count: refused | 300.0 / 450.0 ms (n=30) | 7 | p95 **misses**" in text
    assert "| granted request: 2 on one node (API) | 300.0 / 450.0 ms (n=30) | 88 |  |" in text
    assert "1.00 2.00 3.00 at the start, 4.00 5.00 6.00 at the end" in text
    updated = report.updated_report(tmp_path, PREVIOUS)
    assert "## Reservation requests (server time, PostgreSQL)" in updated
    assert "kept as it was" in updated


def test_a_later_run_drops_the_notes_of_runs_it_measured_again_and_keeps_the_others():
    lines = [
        "```",
        "the full run",
        "```",
        "",
        "Re-measured later: Admission webhook",
        "",
        "the webhook's first run",
        "",
        "Re-measured later: Full sweeps, Admission webhook",
        "",
        "a run that also holds the sweeps",
        "",
    ]
    out = report._later_run(lines, "Admission webhook, Reservation requests", ["this run"])
    text = "\n".join(out)
    assert "the webhook's first run" not in text  # all it measured was measured again
    assert "a run that also holds the sweeps" in text  # the sweeps' figures are still its
    assert text.endswith("Re-measured later: Admission webhook, Reservation requests\n\nthis run\n")
    assert text.startswith("```\nthe full run\n```")
