"""API and fleet-view server time at fleet scale (PostgreSQL).

    .venv/bin/python -m bench.api --interfaces 80000 --runs 30

Server time = wall time of one request through Django's test Client in this process: the whole
middleware stack, authentication (knox token for the API, a session for the fleet view), the
view, the queries and the rendering, without a socket or a WSGI server. The database is filled
by a cold sweep of the simulated fleet (bench.fleet) when it holds fewer than --interfaces rows.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import fleet, portal
from bench.stats import summary


def fill(interfaces: int, nics: int) -> None:
    from bench.fleet_agent import FleetAgentClient
    from inventory.clients.cluster import ClusterClient
    from inventory.models import Interface
    from inventory.services import polling

    have = Interface.objects.count()
    if interfaces <= have <= interfaces * 1.1:
        return  # the inventory a sweep benchmark left (--keep) is this size
    # Every MULTUS_POD_EVERY-th node has one NIC in a pod (not on the host, never seen).
    per_node = nics - 1 / fleet.MULTUS_POD_EVERY
    nodes = math.ceil(interfaces / per_node)
    tmp = Path(tempfile.mkdtemp(prefix="nicportal-bench-"))
    with portal.fleet_process(nodes, nics, tmp) as url:
        kubeconfig = fleet.write_kubeconfig(tmp / "kubeconfig", url)
        portal.empty_inventory()
        polling.sweep_inline(
            workers=4,
            processes=2,
            cluster_client=ClusterClient(kubeconfig=str(kubeconfig), timeout=120),
            agent=FleetAgentClient.for_fleet(timeout=10),
        )


def timed_get(
    client: Any, url: str, runs: int, *, first_after_change: bool = False, **headers: str
) -> dict[str, Any]:
    """Server time of `runs` requests after two warm-ups, and the queries of one more.
    `first_after_change`: each is the first request after an inventory change, the cache
    emptied before it (a change moves the inventory version, so neither the count nor the
    checkpoints of a deep offset are found)."""
    from django.core.cache import cache
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):  # warm-up: connection, caches, template loading
        response = client.get(url, **headers)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    times = []
    for _ in range(runs):
        if first_after_change:
            cache.clear()
        started = time.perf_counter()
        response = client.get(url, **headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    if first_after_change:
        cache.clear()
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **headers)
    body = response.content
    result = {"url": url, "ms": summary(times, scale=1000, digits=1), "queries": len(queries)}
    if response.get("Content-Type", "").startswith("application/json"):
        data = json.loads(body)
        result["count"] = data.get("count")
        result["returned"] = len(data.get("results", []))
    return result


def add_released_reservations(wanted: int) -> int:
    """Make the database hold at least `wanted` released reservations (history a list must not
    pay for): ten per free NIC over the first free NICs, released a month ago."""
    from datetime import timedelta

    from django.contrib.auth.models import Group
    from django.utils import timezone

    from inventory.models import Interface, Reservation

    have = Reservation.objects.filter(released_at__isnull=False).count()
    if have >= wanted:
        return have
    team, _ = Group.objects.get_or_create(name="bench-history")
    user = _bench_user()
    free = list(Interface.objects.filter(state="free").values_list("id", flat=True)[:2000])
    now = timezone.now()
    Reservation.objects.bulk_create(
        (
            Reservation(
                interface_id=free[number % len(free)],
                team=team,
                created_by=user,
                purpose="bench history",
                starts_at=now - timedelta(days=30, minutes=number),
                expires_at=now - timedelta(days=29),
                released_at=now - timedelta(days=29),
                released_by=user,
                release_reason="released",
            )
            for number in range(wanted - have)
        ),
        batch_size=2000,
    )
    return wanted


def _bench_user() -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.get_or_create(username="bench")[0]


def deep_cursor(ordering: str, depth: int, **filters: Any) -> str:
    """The cursor a client walking the list would hold after `depth` rows."""
    from inventory.models import Interface
    from inventory.read import pages

    sort = pages.parse_sort(ordering)
    ordered = pages.sorted_by(Interface.objects.filter(**filters), sort)
    return pages.Cursor(sort, tuple(ordered.values_list(*sort.columns)[depth])).encode()


# (deep page, first page) pairs judged against the 1.5x target.
RATIO_PAIRS = (
    ("api deep page", "api first page"),
    ("api deep cursor page", "api cursor first page"),
    ("api state=free deep page", "api state=free first page"),
    ("api state=free deep cursor page", "api state=free first page"),
    ("fleet view deep page (page number)", "fleet view first page"),
    ("fleet view deep page (cursor)", "fleet view first page"),
)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="API and fleet view server time")
    parser.add_argument("--interfaces", type=int, default=80000)
    parser.add_argument("--nics", type=int, default=16)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--deep-offset",
        type=int,
        default=None,
        help="the deep pages' first row (default: 70,000 of 79,900, the same share of any size)",
    )
    parser.add_argument(
        "--released", type=int, default=10000, help="released reservations in the database"
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    portal.configure()
    fill(args.interfaces, args.nics)
    released = add_released_reservations(args.released)
    from django.db import connection

    # Fresh planner statistics and visibility map, as autovacuum leaves a table after 80,000
    # inserts (without them PostgreSQL estimates a few thousand rows and picks worse plans).
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")

    from django.test import Client
    from knox.models import AuthToken

    from inventory.models import Interface, Node

    quiet_wait = portal.wait_for_quiet()
    load_before = os.getloadavg()
    user = _bench_user()
    _, token = AuthToken.objects.create(user)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    total = Interface.objects.count()
    free = Interface.objects.filter(state="free").count()
    node = Node.objects.order_by("name")[Node.objects.count() // 2].name
    api = "/api/v1/interfaces/"
    wanted = args.deep_offset if args.deep_offset is not None else total * 70000 // 79900
    deep = min(wanted, max(0, total - 100))
    deep_free = max(0, free - 100)
    cursor = deep_cursor("node__name", deep)
    cursor_free = deep_cursor("node__name", deep_free, state="free")
    cases = {
        "api first page": f"{api}",
        "api deep page": f"{api}?offset={deep}",
        "api cursor first page": f"{api}?cursor=",
        "api deep cursor page": f"{api}?cursor={cursor}",
        "api state=free first page": f"{api}?state=free",
        "api state=free deep page": f"{api}?state=free&offset={deep_free}",
        "api state=free deep cursor page": f"{api}?state=free&cursor={cursor_free}",
        "api changed-first deep page": f"{api}?ordering=-state_changed_at&offset={deep}",
        f"api node={node}": f"{api}?node={node}",
    }
    # The heap as a server process has it: start-up objects frozen (nicportal/wsgi.py).
    from nicportal.wsgi import settle_heap

    settle_heap()
    client = Client()
    results: dict[str, Any] = {
        "interfaces": total,
        "free": free,
        "released_reservations": released,
        "deep_offset": deep,
        "deep_free_offset": deep_free,
        "quiet_wait_s": quiet_wait,
        "cases": {},
    }
    for label, url in cases.items():
        results["cases"][label] = timed_get(client, url, args.runs, **auth)
        print(f"{label}: {results['cases'][label]}", file=sys.stderr)
    label = "api deep page, first request after an inventory change"
    results["cases"][label] = timed_get(
        client, cases["api deep page"], args.runs, first_after_change=True, **auth
    )
    print(f"{label}: {results['cases'][label]}", file=sys.stderr)

    session = Client()
    session.force_login(user)
    fleet_deep = deep // 50 + 1
    fleet_cursor = deep_cursor("node__name", (fleet_deep - 1) * 50 - 1)
    for label, url in {
        "fleet view first page": "/",
        "fleet view state=free": "/?state=free",
        "fleet view deep page (page number)": f"/?page={fleet_deep}",
        "fleet view deep page (cursor)": f"/?page={fleet_deep}&cursor={fleet_cursor}",
    }.items():
        try:
            results["cases"][label] = timed_get(session, url, args.runs)
        except AssertionError as exc:
            results["cases"][label] = {"url": url, "error": str(exc)[:300]}
        print(f"{label}: {results['cases'][label]}", file=sys.stderr)
    results["ratios"] = [
        {
            "deep": deep_label,
            "first": first_label,
            "ratio": round(
                results["cases"][deep_label]["ms"]["median"]
                / results["cases"][first_label]["ms"]["median"],
                2,
            ),
        }
        for deep_label, first_label in RATIO_PAIRS
        if "ms" in results["cases"].get(deep_label, {})
        and "ms" in results["cases"].get(first_label, {})
    ]
    results["load"] = {"before": load_before, "after": os.getloadavg()}
    AuthToken.objects.filter(user=user).delete()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
