"""Reservation requests at fleet scale (PostgreSQL): the form's live count and a granted request.

    .venv/bin/python -m bench.requests --interfaces 79900 --runs 30

Server time = wall time of one request through Django's test Client in this process (all
middleware, session or knox token auth, view, queries, rendering; no socket, no WSGI server),
as in bench/api.py, on the inventory a cold sweep of the simulated fleet leaves (bench.fleet,
filled here when the database holds fewer than --interfaces rows). A granted request's
reservations are released after each run, outside the timing, so that every run finds the same
inventory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from bench import api, portal
from bench.stats import summary

PREVIEW_URL = "/requests/preview/"
API_PREVIEW_URL = "/api/v1/reservation-requests/preview/"
API_URL = "/api/v1/reservation-requests/"


def timed_post(
    client: Any,
    url: str,
    runs: int,
    body: dict[str, Any],
    *,
    expect: int = 200,
    json_body: bool = False,
    after: Any = None,
    **headers: str,
) -> dict[str, Any]:
    """Median/p95 server time of `runs` POSTs and the queries of one more; `after(response)`
    runs after each, outside the timing."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def post() -> Any:
        if json_body:
            return client.post(url, json.dumps(body), content_type="application/json", **headers)
        return client.post(url, body, **headers)

    def checked(response: Any) -> Any:
        assert response.status_code == expect, (url, response.status_code, response.content[:300])
        if after is not None:
            after(response)
        return response

    for _ in range(2):  # warm-up: connection, caches, template loading
        checked(post())
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        response = post()
        times.append(time.perf_counter() - started)
        checked(response)
    with CaptureQueriesContext(connection) as queries:
        response = checked(post())
    result: dict[str, Any] = {
        "url": url,
        "body": body,
        "ms": summary(times, scale=1000, digits=1),
        "queries": len(queries),
    }
    if json_body:
        data = json.loads(response.content)
        result["matching"] = data.get("matching", len(data.get("nics", [])))
    return result


def release_all(response: Any) -> None:
    """Undo a granted request (its reservations released), so the next run finds the same."""
    from inventory.services import reservations

    user = api._bench_user()
    for nic in json.loads(response.content)["nics"]:
        reservations.release(reservation_id=nic["reservation"], user=user, reason="bench")


def count_floor(runs: int) -> dict[str, Any]:
    """The least any exact count over the fleet costs: one COUNT(*) of the NICs a request
    considers, straight through the database connection (no view, no Python per row)."""
    from django.db import connection

    from inventory.read import capacity

    sql, params = capacity.considered().order_by().values("pk").query.sql_with_params()
    times = []
    with connection.cursor() as cursor:
        for _ in range(runs):
            started = time.perf_counter()
            cursor.execute(f"SELECT COUNT(*) FROM ({sql}) AS considered", params)
            cursor.fetchall()
            times.append(time.perf_counter() - started)
    return {"ms": summary(times, scale=1000, digits=1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="Reservation requests' server time")
    parser.add_argument("--interfaces", type=int, default=79900)
    parser.add_argument("--nics", type=int, default=16)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)

    portal.configure()
    api.fill(args.interfaces, args.nics)
    import logging

    # Each grant publishes its nodes' reservations to the cluster after the commit; there is no
    # cluster here, so the attempt fails at once: its warning and traceback are not printed.
    logging.getLogger("inventory.services.reservations").setLevel(logging.ERROR)
    from django.contrib.auth.models import Group
    from django.db import connection
    from django.test import Client
    from django.utils import timezone
    from knox.models import AuthToken

    from inventory.models import Interface, Node

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    load_before = os.getloadavg()
    user = api._bench_user()
    team, _ = Group.objects.get_or_create(name="bench-requests")
    user.groups.add(team)
    _, token = AuthToken.objects.create(user)
    auth = {"HTTP_AUTHORIZATION": f"Token {token}"}
    node = Node.objects.order_by("name")[Node.objects.count() // 2].name
    total = Interface.objects.count()
    # The heap as a server process has it: start-up objects frozen (nicportal/wsgi.py).
    from nicportal.wsgi import settle_heap

    settle_heap()
    session = Client()
    session.force_login(user)
    token_client = Client()
    live = {
        "live count: any 2": {"count": 2, "placement": "any"},
        "live count: 2 × 25G on one node": {
            "count": 2,
            "min_speed_mbps": 25000,
            "placement": "one_node",
        },
        "live count: 4 spread over 2 nodes, driver": {
            "count": 4,
            "driver": "mlx5_core",
            "placement": "spread",
            "spread_nodes": 2,
        },
        f"live count: node {node}": {"count": 2, "nodes": node, "placement": "any"},
        "live count: refused (speed ≥ 1 Tb/s), explained": {
            "count": 1,
            "min_speed_mbps": 1_000_000,
            "placement": "any",
        },
    }
    results: dict[str, Any] = {"interfaces": total, "cases": {}}
    for label, body in live.items():
        # As htmx sends it: the answer is the count fragment, not the whole page.
        results["cases"][label] = timed_post(
            session, PREVIEW_URL, args.runs, body, HTTP_HX_REQUEST="true"
        )
        print(f"{label}: {results['cases'][label]}", file=sys.stderr)
    label = "API preview: 2 × 25G on one node"
    results["cases"][label] = timed_post(
        token_client,
        API_PREVIEW_URL,
        args.runs,
        live["live count: 2 × 25G on one node"],
        json_body=True,
        **auth,
    )
    print(f"{label}: {results['cases'][label]}", file=sys.stderr)
    label = "granted request: 2 × 25G on one node (API)"
    until = (timezone.now() + timedelta(days=1)).isoformat()
    results["cases"][label] = timed_post(
        token_client,
        API_URL,
        args.runs,
        {
            "count": 2,
            "min_speed_mbps": 25000,
            "placement": "one_node",
            "team": team.name,
            "purpose": "bench",
            "expires_at": until,
        },
        expect=201,
        json_body=True,
        after=release_all,
        **auth,
    )
    print(f"{label}: {results['cases'][label]}", file=sys.stderr)
    results["floor"] = count_floor(args.runs)
    print(f"floor: {results['floor']}", file=sys.stderr)
    results["load"] = {"before": load_before, "after": os.getloadavg()}
    AuthToken.objects.filter(user=user).delete()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
