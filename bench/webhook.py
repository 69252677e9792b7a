"""Admission webhook server time at fleet scale (PostgreSQL, 5,000 nodes x 16 NICs).

    .venv/bin/python -m bench.webhook --interfaces 79900 --runs 1000 --json var/bench/webhook.json

Server time = wall time of one POST /validate through Django's test Client in this process (with
the webhook server's settings, NICPORTAL_WEBHOOK_SERVER=1: its URLconf and middleware; parsing,
the decision, the query, queueing a denial's record, the Redis counters), without a socket or TLS.
A denial's record is written by the process's writer thread, off the response path
(inventory/services/admission_records.py), while the next reviews run, as in the server: after
each case the writer is flushed and the case's records counted in the database (a case whose
records did not all land stops the run), and the writer's own time per record is reported
(`records`: batches, seconds spent writing / records written).
The inventory is the one bench.api uses: a cold sweep of the simulated fleet (bench.fleet) fills
the database when it holds fewer than --interfaces rows. The in-memory index is warm (it is
rebuilt in the background in production; its build time is reported on its own). Goal: p99
under 10 ms for the reviews a cluster sends all day (pods pinned to a node, NICPortal-built
NADs); the fleet-wide cases are reported too.

The reviews run outside any transaction with the inventory change listener listening, as in the
server: a repeated fleet-wide review is answered from the remembered device classes
(read/classes.py). The cases "... after a change" commit a change to an interface row that
the case's selector picks (an UPDATE that rewrites a value with itself: the notification,
which names the row, is what matters) and wait for its notification before each timed review,
so every one of them reads the database: the cost of the first review after each commit (a
patch: the changed row read again and the classes regrouped). How each case's reviews were
answered (hit, patch, miss, bypass: nicportal_admission_class_cache_total) is reported with it.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from bench import api, portal

TARGET_MS = 10.0


def quantiles(values: list[float]) -> dict[str, float]:
    """Median, nearest-rank p95 and p99, max, in milliseconds (of values in seconds)."""
    ordered = sorted(v * 1000 for v in values)

    def rank(q: float) -> float:
        return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 3)

    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), 3),
        "p95": rank(0.95),
        "p99": rank(0.99),
        "max": round(ordered[-1], 3),
    }


def reads(queries: Any) -> int:
    """The SELECTs of a review other than its record's: the inventory it read."""
    return sum(
        1
        for q in queries
        if q["sql"].lstrip().upper().startswith(("SELECT", "WITH"))
        and "inventory_admissionrecord" not in q["sql"]
    )


def review(resource: str, obj: dict, namespace: str) -> bytes:
    group, _, plural = resource.rpartition("/")
    return json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": str(uuid.uuid4()),
                "resource": {"group": group, "version": "v1", "resource": plural},
                "operation": "CREATE",
                "namespace": namespace,
                "name": obj["metadata"].get("name", ""),
                "object": obj,
                "userInfo": {"username": "bench"},
            },
        }
    ).encode()


def pod(name: str, networks: str | None, **spec: Any) -> dict:
    metadata: dict[str, Any] = {"name": name}
    if networks:
        metadata["annotations"] = {"k8s.v1.cni.cncf.io/networks": networks}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def nad(name: str, config: str, **annotations: str) -> dict:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "bench", "annotations": annotations},
        "spec": {"config": config},
    }


def prepare() -> dict[str, Any]:
    """Teams, a team namespace, a reservation, and the NADs the pods use (rows the sweep would
    have stored), on top of the swept fleet."""
    from django.contrib.auth.models import Group, User

    from inventory.models import (
        AdmissionRecord,
        Cluster,
        Interface,
        NetworkAttachment,
        Node,
        Reservation,
        TeamNamespace,
    )
    from inventory.rules.admission.decide import DeviceSelector
    from inventory.services import nads

    cluster = Cluster.objects.get()
    nodes = list(
        Node.objects.filter(cluster=cluster).order_by("name").values_list("name", flat=True)
    )
    middle, other = nodes[len(nodes) // 2], nodes[len(nodes) // 3]
    free = Interface.objects.filter(node__name=middle, state="free").order_by("name")
    free_nic, reserved_nic = free[0], free[1]
    platform, _ = Group.objects.get_or_create(name="platform")
    ml, _ = Group.objects.get_or_create(name="ml")
    TeamNamespace.objects.get_or_create(team=ml, pattern="ml-*")
    user, _ = User.objects.get_or_create(username="bench", defaults={"is_staff": True})
    if not Reservation.objects.filter(interface=reserved_nic, released_at__isnull=True).exists():
        from datetime import timedelta

        from django.utils import timezone

        Reservation.objects.create(
            interface=reserved_nic,
            team=platform,
            created_by=user,
            purpose="bench",
            expires_at=timezone.now() + timedelta(days=1),
        )
    AdmissionRecord.objects.all().delete()
    built = nads.render(
        user=user, namespace="bench", name="built", interface_ids=[free_nic.pk]
    ).nads[0]
    reserved_built = nads.render(
        user=user, namespace="bench", name="taken", interface_ids=[reserved_nic.pk], team=platform
    ).nads[0]
    fleet_wide = json.dumps(
        {"cniVersion": "0.3.1", "name": "fleet", "type": "host-device", "device": free_nic.name}
    )
    for name, rendered_config, notes in (
        ("built", built.config_json, built.annotations),
        ("taken", reserved_built.config_json, reserved_built.annotations),
        ("fleet", fleet_wide, {}),
    ):
        NetworkAttachment.objects.update_or_create(
            cluster=cluster,
            namespace="bench",
            name=name,
            defaults={"config": rendered_config, "annotations": notes},
        )
    pinned = {"nodeSelector": {"kubernetes.io/hostname": middle}}
    seed = (
        '{\n  "cniVersion": "0.3.1",\n  # the uplink\n  "type": "host-device",\n'
        '  "device": "eth0"\n}'
    )
    eth0 = json.dumps(
        {"cniVersion": "0.3.1", "name": "eth0-nad", "type": "host-device", "device": "eth0"}
    )
    nad_built = dict(built.manifest)
    nad_built["metadata"] = {**nad_built["metadata"], "name": "built-2"}
    return {
        "nodes": len(nodes),
        "interfaces": Interface.objects.count(),
        "cases": {
            "pod without networks annotation": review("/pods", pod("p", None, **pinned), "ml-a"),
            "pod pinned to a node, free NIC (allowed)": review(
                "/pods", pod("p", "bench/built@net1", **pinned), "ml-a"
            ),
            "pod pinned to a node, another team's NIC (denied + record)": review(
                "/pods", pod("p", "bench/taken@net1", **pinned), "ml-a"
            ),
            "pod pinned by nodeName, fleet-wide NAD (allowed)": review(
                "/pods", pod("p", "bench/fleet", nodeName=other), "ml-a"
            ),
            "NAD built by NICPortal (allowed)": review(
                "k8s.cni.cncf.io/network-attachment-definitions", nad_built, "bench"
            ),
            "the seed's NAD, # comment (denied + record)": review(
                "k8s.cni.cncf.io/network-attachment-definitions", nad("seed", seed), "bench"
            ),
            f"unpinned pod, fleet-wide NAD ({len(nodes)} candidate nodes)": review(
                "/pods", pod("p", "bench/fleet"), "ml-a"
            ),
            f"NAD on {free_nic.name} fleet-wide ({len(nodes)} nodes, allowed)": review(
                "k8s.cni.cncf.io/network-attachment-definitions", nad("fleet2", fleet_wide), "bench"
            ),
            f"NAD on eth0 fleet-wide ({len(nodes)} primary NICs, denied)": review(
                "k8s.cni.cncf.io/network-attachment-definitions", nad("eth0-nad", eth0), "bench"
            ),
            f"unpinned pod, fleet-wide NAD, after a change ({len(nodes)} candidate nodes)": review(
                "/pods", pod("p", "bench/fleet"), "ml-a"
            ),
            f"NAD on eth0 fleet-wide, after a change ({len(nodes)} primary NICs, denied)": review(
                "k8s.cni.cncf.io/network-attachment-definitions", nad("eth0-nad", eth0), "bench"
            ),
        },
        # The row each "after a change" case's commits write: one its selector picks.
        "selector": DeviceSelector("device", free_nic.name),
        "changed_interface": {
            "candidate": free_nic.pk,
            "primary NICs": Interface.objects.get(node__name=middle, name="eth0").pk,
        },
    }


def commit_a_change(interface_id: int) -> None:
    """Commit an UPDATE of one interface row (same value) and wait for its notification."""
    from django.db import connection

    from inventory.models import Interface
    from inventory.read import changes

    since = changes.LISTENER.generation
    with connection.cursor() as cursor:  # autocommit: committed when it returns
        cursor.execute(
            f"UPDATE {Interface._meta.db_table} SET reason = reason WHERE id = %s",
            [interface_id],
        )
    if not changes.LISTENER.wait_for(since, 10):
        raise SystemExit("no change notification within 10 s: is migration 0018 applied?")


def regroup_times(index: Any, selector: Any, runs: int = 200) -> dict[str, Any]:
    """What a patch costs in Python beyond its one query (read/classes.py), timed alone on the
    fleet-wide selector's rows: one changed row taken out and put back into its class and the
    classes built (`patch`), and, for comparison, every row grouped again (`all_rows`)."""
    from inventory.read import changes, classes

    rows = classes.read_rows(index, selector, None)
    kept = classes.grouped(rows)
    some = next(iter(rows))
    changed = changes.Changed(frozenset({some}), frozenset())
    fresh = {some: rows[some]}
    timed: dict[str, Any] = {"rows": len(rows)}
    for label, work in (
        ("patch", lambda: classes.classes_of(index, classes.patched(kept, changed, fresh))),
        ("all_rows", lambda: classes.group(index, rows)),
    ):
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            work()
            times.append(time.perf_counter() - started)
        timed[label] = quantiles(times)
    return timed


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="admission webhook server time")
    parser.add_argument("--interfaces", type=int, default=79900)
    parser.add_argument("--nics", type=int, default=16)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument(
        "--fleet-runs", type=int, default=50, help="runs of the fleet-wide cases after a change"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    # The webhook server's settings: its URLconf and its two middlewares.
    os.environ["NICPORTAL_WEBHOOK_SERVER"] = "1"
    portal.configure()
    api.fill(args.interfaces, args.nics)
    from django.db import connection
    from django.test import Client, override_settings
    from django.test.utils import CaptureQueriesContext

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    setup = prepare()

    from django.conf import settings
    from django.db.models import Sum

    from inventory.models import AdmissionRecord
    from inventory.read import admission as admission_facts
    from inventory.read import changes
    from inventory.services import admission, admission_records

    if not settings.WEBHOOK_CLASS_CACHE:
        raise SystemExit("NICPORTAL_WEBHOOK_CLASS_CACHE is off: the server's default is on")
    if not settings.WEBHOOK_RECORD_ASYNC:
        raise SystemExit("NICPORTAL_WEBHOOK_RECORD_ASYNC is off: the server's default is on")
    writer = admission_records.WRITER

    def recorded() -> int:
        return AdmissionRecord.objects.aggregate(n=Sum("count"))["n"] or 0

    if not changes.LISTENER.wait_healthy(10):
        raise SystemExit("the inventory change listener did not start")
    admission_facts.INDEX.background = False
    builds = []
    for _ in range(5):
        started = time.perf_counter()
        admission_facts.INDEX.reload()
        builds.append(time.perf_counter() - started)
    results: dict[str, Any] = {
        "load_average_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "class_cache": settings.WEBHOOK_CLASS_CACHE,
        "nodes": setup["nodes"],
        "interfaces": setup["interfaces"],
        "target_ms": TARGET_MS,
        "index_build_ms": quantiles(builds),
        "cases": {},
    }
    print(f"index build: {results['index_build_ms']}", file=sys.stderr)
    # The heap as a server process has it: start-up objects frozen (nicportal/wsgi.py).
    from nicportal.wsgi import settle_heap

    settle_heap()
    client = Client()
    # A long max age: the index stays warm during the timing, as the background refresh keeps it.
    with override_settings(WEBHOOK_INDEX_MAX_AGE=3600):
        for label, body in setup["cases"].items():
            changed = "after a change" in label
            changing = next(
                (pk for words, pk in setup["changed_interface"].items() if words in label), None
            )
            runs = args.fleet_runs if changed else args.runs
            records_before = recorded()
            written, batches, writing = writer.written, writer.batches, writer.write_seconds
            for _ in range(3):
                response = client.post("/validate", body, content_type="application/json")
                assert response.status_code == 200, response.content[:300]
            times, cpu = [], []
            counted = admission.read_counters()
            for _ in range(runs):
                if changed:
                    commit_a_change(changing)
                started, started_cpu = time.perf_counter(), time.thread_time()
                response = client.post("/validate", body, content_type="application/json")
                times.append(time.perf_counter() - started)
                cpu.append(time.thread_time() - started_cpu)
            answer = response.json()["response"]
            after = admission.read_counters()
            how = {}
            for result in admission.CLASS_CACHE_RESULTS:
                key = f"class_cache|{result}"
                if after.get(key, 0) != counted.get(key, 0):
                    how[result] = int(after.get(key, 0) - counted.get(key, 0))
            if changed:
                commit_a_change(changing)
            with CaptureQueriesContext(connection) as queries:
                client.post("/validate", body, content_type="application/json")
            # Every denial of the case (3 warm-ups, the timed runs, the one above) recorded.
            started = time.perf_counter()
            if not writer.flush(60):
                raise SystemExit(f"{label}: the record writer did not finish within 60 s")
            flush_ms = (time.perf_counter() - started) * 1000
            landed = recorded() - records_before
            expected = 0 if answer["allowed"] else runs + 4
            if landed != expected:
                raise SystemExit(f"{label}: {landed} records landed, {expected} expected")
            records = None
            if writer.written > written:
                records = {
                    "records": writer.written - written,
                    "batches": writer.batches - batches,
                    "ms_per_record": round(
                        (writer.write_seconds - writing) * 1000 / (writer.written - written), 3
                    ),
                    "flush_after_ms": round(flush_ms, 3),  # left to write after the last review
                }
            results["cases"][label] = {
                "ms": quantiles(times),
                # CPU time of this thread: what the review costs the server, without the waits
                # for PostgreSQL and Redis, and without waiting for a CPU on a shared machine.
                "cpu_ms": quantiles(cpu),
                "allowed": answer["allowed"],
                "queries": len(queries),  # the review's own: its record is the writer's
                "reads": reads(queries),
                "class_cache": how,  # how the timed reviews' device classes were answered
                "records": records,  # the writer's, for this case's denials
            }
            print(f"{label}: {results['cases'][label]}", file=sys.stderr)
    results["class_regroup_ms"] = regroup_times(admission_facts.INDEX.get(), setup["selector"])
    print(f"class regroup: {results['class_regroup_ms']}", file=sys.stderr)
    results["load_average_at_end"] = Path("/proc/loadavg").read_text().split()[:3]
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
