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
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import fleet, portal
from bench.stats import summary


def fill(interfaces: int, nics: int) -> None:
    from inventory.clients.cluster import ClusterClient
    from inventory.models import Interface
    from inventory.services import polling

    if Interface.objects.count() >= interfaces:
        return
    # Every MULTUS_POD_EVERY-th node has one NIC in a pod (not on the host, never seen).
    per_node = nics - 1 / fleet.MULTUS_POD_EVERY
    nodes = math.ceil(interfaces / per_node)
    tmp = Path(tempfile.mkdtemp(prefix="nicportal-bench-"))
    with portal.fleet_process(nodes, nics, tmp) as url:
        kubeconfig = fleet.write_kubeconfig(tmp / "kubeconfig", url)
        portal.empty_inventory()
        polling.sweep_inline(
            workers=8,
            cluster_client=ClusterClient(kubeconfig=str(kubeconfig), timeout=120),
            agent=portal.FleetAgentClient.for_fleet(timeout=10),
        )


def timed_get(client: Any, url: str, runs: int, **headers: str) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    for _ in range(2):  # warm-up: connection, caches, template loading
        response = client.get(url, **headers)
        assert response.status_code == 200, (url, response.status_code, response.content[:300])
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = client.get(url, **headers)
        times.append(time.perf_counter() - started)
        assert response.status_code == 200, (url, response.status_code)
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, **headers)
    body = response.content
    result = {"url": url, "ms": summary(times, scale=1000, digits=1), "queries": len(queries)}
    if response.get("Content-Type", "").startswith("application/json"):
        data = json.loads(body)
        result["count"] = data.get("count")
        result["returned"] = len(data.get("results", []))
    return result


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="API and fleet view server time")
    parser.add_argument("--interfaces", type=int, default=80000)
    parser.add_argument("--nics", type=int, default=16)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--deep-offset", type=int, default=70000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    portal.configure()
    fill(args.interfaces, args.nics)
    from django.db import connection

    # Fresh planner statistics, as autovacuum's ANALYZE gives a table after 80,000 inserts
    # (without them PostgreSQL estimates a few thousand rows and picks worse plans).
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")

    from django.contrib.auth import get_user_model
    from django.test import Client
    from knox.models import AuthToken

    from inventory.models import Interface, Node

    user, _ = get_user_model().objects.get_or_create(username="bench")
    _, token = AuthToken.objects.create(user)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    total = Interface.objects.count()
    free = Interface.objects.filter(state="free").count()
    node = Node.objects.order_by("name")[Node.objects.count() // 2].name
    api = "/api/v1/interfaces/"
    deep = min(args.deep_offset, max(0, total - 100))
    deep_free = max(0, free - 100)
    cases = {
        "api first page": f"{api}",
        f"api deep page (offset {deep})": f"{api}?offset={deep}",
        "api state=free first page": f"{api}?state=free",
        f"api state=free deep page (offset {deep_free})": f"{api}?state=free&offset={deep_free}",
        f"api node={node}": f"{api}?node={node}",
    }
    client = Client()
    results: dict[str, Any] = {"interfaces": total, "free": free, "cases": {}}
    for label, url in cases.items():
        results["cases"][label] = timed_get(client, url, args.runs, **auth)
        print(f"{label}: {results['cases'][label]}", file=sys.stderr)

    session = Client()
    session.force_login(user)
    for label, url in {
        "fleet view first page": "/",
        "fleet view state=free": "/?state=free",
    }.items():
        try:
            results["cases"][label] = timed_get(session, url, args.runs)
        except AssertionError as exc:
            results["cases"][label] = {"url": url, "error": str(exc)[:300]}
        print(f"{label}: {results['cases'][label]}", file=sys.stderr)
    AuthToken.objects.filter(user=user).delete()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
