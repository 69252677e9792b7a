"""The portal side of the benchmarks: environment and database. Imported before Django is set
up (configure() must run first), so it imports nothing of the portal at module level; the agent
client for the simulated fleet is bench/fleet_agent.py, imported after configure()."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import fleet

REPO = Path(__file__).resolve().parents[1]
# A role that may create databases; BENCH_PG_ROOT overrides it (e.g. with a password).
PG_ROOT = os.environ.get("BENCH_PG_ROOT", "postgres://postgres@127.0.0.1:5432")
BENCH_DB = os.environ.get("BENCH_DB", "nicportal_bench")
# Redis database 11: the cache of these runs (clearing it flushes the whole database, so it
# must be one nobody else uses; the project's defaults are 0 for the broker and 1 for the cache).
BENCH_REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11")


def configure(
    *,
    database: str = BENCH_DB,
    kubeconfig: str = "",
    agent_master_key: str = fleet.MASTER_KEY,
    cluster_name: str = fleet.CLUSTER_NAME,
) -> None:
    """Environment for nicportal.settings: PostgreSQL database `database`, Redis cache."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nicportal.settings")
    os.environ["DATABASE_URL"] = f"{PG_ROOT}/{database}"
    os.environ["NICPORTAL_REDIS_URL"] = BENCH_REDIS
    os.environ["NICPORTAL_AGENT_MASTER_KEY"] = agent_master_key
    os.environ["NICPORTAL_CLUSTER_NAME"] = cluster_name
    # One INFO line per changed node would cost more than the sweep at 5,000 nodes.
    os.environ.setdefault("NICPORTAL_LOG_LEVEL", "WARNING")
    if kubeconfig:
        os.environ["KUBECONFIG"] = kubeconfig
    ensure_database(database)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def ensure_database(database: str) -> None:
    if database.startswith("test"):
        raise SystemExit(f"refusing to use {database!r}: test* databases belong to the test runs")
    found = subprocess.run(
        [
            "psql",
            f"{PG_ROOT}/postgres",
            "-Atc",
            f"SELECT 1 FROM pg_database WHERE datname='{database}'",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if not found:
        subprocess.run(
            ["psql", f"{PG_ROOT}/postgres", "-qc", f'CREATE DATABASE "{database}"'], check=True
        )


def empty_inventory() -> None:
    """Cold start: no clusters, nodes, interfaces, history; an empty cache."""
    from django.core.cache import cache
    from django.db import connection

    from inventory.models import Cluster

    tables = [
        m._meta.db_table
        for m in __import__("django.apps", fromlist=["apps"])
        .apps.get_app_config("inventory")
        .get_models()
    ]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in tables) + " CASCADE")
        else:
            Cluster.objects.all().delete()
    cache.clear()


def pg_row_changes() -> int:
    """n_tup_ins + n_tup_upd + n_tup_del over every user table of this database, as the
    statistics collector counts them (independent of SyncStats)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT coalesce(sum(n_tup_ins + n_tup_upd + n_tup_del), 0) FROM pg_stat_user_tables"
        )
        return int(cursor.fetchone()[0])


def vacuum_analyze() -> None:
    """VACUUM ANALYZE the benchmark database: visibility map and planner statistics as
    autovacuum leaves them after a bulk load."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")


def settled_pg_row_changes(timeout: float = 30.0) -> int:
    """Backends report their counters at the end of a transaction at most once a second, after
    up to 10 s idle, and when they exit. So: close this thread's connection, let the sweep
    threads' connections be collected, wait until no other backend is connected to this
    database (they have exited, so they have reported), then read until two reads agree."""
    import gc

    from django.db import connection, connections

    connections.close_all()
    gc.collect()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            others = cursor.fetchone()[0]
        if not others:
            break
        time.sleep(0.2)
    previous = pg_row_changes()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        current = pg_row_changes()
        if current == previous:
            return current
        previous = current
    return previous


# The running simulators' process ids: their CPU time is read from /proc (process_cpu).
FLEET_PIDS: list[int] = []


def wait_for_quiet(*, idle: float = 0.9, timeout: float = 60.0) -> float:
    """Wait until the machine's CPUs were at least `idle` idle over one second (what an earlier
    part left running, say autovacuum after a cold sweep's inserts, has finished), at most
    `timeout` seconds; return the seconds waited (the report shows them)."""
    started = time.monotonic()

    def ticks() -> tuple[int, int]:
        with open("/proc/stat") as stat:
            values = [int(v) for v in stat.readline().split()[1:]]
        return values[3] + values[4], sum(values)  # idle + iowait, all

    while time.monotonic() - started < timeout:
        idle_before, total_before = ticks()
        time.sleep(1.0)
        idle_after, total_after = ticks()
        if (idle_after - idle_before) >= idle * max(1, total_after - total_before):
            break
    return round(time.monotonic() - started, 1)


def _stat(pid: int | str) -> tuple[str, list[str]] | None:
    """A process's command name and the fields of /proc/PID/stat after it (state, ppid, ...,
    utime and stime at 11 and 12, cutime and cstime at 13 and 14); None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    head, _, rest = text.rpartition(")")
    return head.partition("(")[2], rest.split()


def _seconds(ticks: int) -> float:
    return ticks / os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux /proc), 0.0 if it is gone."""
    found = _stat(pid)
    return _seconds(int(found[1][11]) + int(found[1][12])) if found else 0.0


def postgres_cpu() -> float:
    """User + system CPU seconds of PostgreSQL on this machine (the benchmark's own database
    server, on the same cores): its running processes, plus the backends that have exited
    (the postmaster reaps them, so their time is its children's time)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        found = _stat(stat.parent.name)
        if found is None or found[0] != "postgres":
            continue
        fields = found[1]
        total += int(fields[11]) + int(fields[12])
        parent = _stat(fields[1])
        if parent is None or parent[0] != "postgres":  # the postmaster: its reaped children
            total += int(fields[13]) + int(fields[14])
    return _seconds(total)


@contextmanager
def fleet_process(nodes: int, nics: int, tmp: Path) -> Iterator[str]:
    """The simulator in its own process (its own GIL): yields its base URL."""
    ready = tmp / f"fleet-{os.getpid()}.port"
    ready.unlink(missing_ok=True)
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.fleet", "--nodes", str(nodes), "--nics", str(nics)]
        + ["--ready-file", str(ready)],
        cwd=REPO,
    )
    try:
        deadline = time.monotonic() + 300
        while not ready.exists() or not ready.read_text().strip():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("fleet simulator did not start")
            time.sleep(0.1)
        FLEET_PIDS.append(proc.pid)
        yield f"http://127.0.0.1:{ready.read_text().strip()}"
    finally:
        FLEET_PIDS.remove(proc.pid)
        proc.terminate()
        proc.wait(timeout=10)
        ready.unlink(missing_ok=True)
