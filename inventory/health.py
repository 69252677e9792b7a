"""Operations endpoints: /healthz (liveness), /readyz (readiness) and /metrics (Prometheus).

- /healthz answers from memory only: it says the process serves requests, nothing more. A
  liveness probe that touched the database would restart every web pod when PostgreSQL blips.
- /readyz checks what a web pod needs to do useful work: the database (SELECT 1) and the Celery
  broker (Redis PING with a short timeout, or the embedded filesystem broker's folder being
  writable). It also reports the cache and the last sweep, but a cache that does not answer or
  a missing, failed or stale sweep only makes the answer "degraded", still 200: the cache is an
  optimisation that every reader falls back from (to the database), and the sweep is the
  worker's and beat's job (or the cluster API's); taking the web pods out of the Service would
  fix neither and would hide the dashboard that shows the staleness. Alert on
  nicportal_last_sweep_timestamp_seconds instead. 503 means database or broker down, and names
  the failing check.
- /metrics renders a fresh CollectorRegistry per request from the database and the cache, so
  every web process (gunicorn workers included) answers the same numbers without multiprocess
  bookkeeping. Optional bearer token: settings.METRICS_TOKEN.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from django.db import DatabaseError, connections
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from django_redis import get_redis_connection
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from inventory.choices import OwnershipState
from inventory.models import Cluster, Interface, Node, Reservation
from inventory.read import facts
from inventory.rules import crosscheck
from inventory.services import admission, cluster_clients, polling

# A readiness probe must answer well inside the kubelet's timeout (3 s in the manifests).
BROKER_TIMEOUT = 1.0

OK, DEGRADED, FAILED = "ok", "degraded", "failed"


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": OK})


# --- readiness -------------------------------------------------------------------------------


def check_database(alias: str = "default") -> dict[str, Any]:
    try:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except DatabaseError as exc:
        # A broken persistent connection (conn_max_age) must not outlive the outage: drop it
        # so that the next request reconnects once the server is back.
        connections[alias].close_if_unusable_or_obsolete()
        return {"status": FAILED, "error": _one_line(exc)}
    return {"status": OK, "vendor": connections[alias].vendor}


def check_broker(broker_url: str | None = None) -> dict[str, Any]:
    url = broker_url if broker_url is not None else settings.CELERY_BROKER_URL
    scheme = url.split("://", 1)[0].lower()
    if scheme in {"redis", "rediss"}:
        return _check_redis_broker(url)
    if scheme == "filesystem":
        return _check_filesystem_broker()
    # amqp and friends: no client of ours to ask; say so rather than pretend.
    return {"status": OK, "transport": scheme, "detail": "not checked for this transport"}


def _check_redis_broker(url: str) -> dict[str, Any]:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=BROKER_TIMEOUT, socket_timeout=BROKER_TIMEOUT
    )
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return {"status": FAILED, "transport": "redis", "error": _one_line(exc)}
    finally:
        client.close()
    return {"status": OK, "transport": "redis"}


def _check_filesystem_broker() -> dict[str, Any]:
    options = settings.CELERY_BROKER_TRANSPORT_OPTIONS
    folders = {options.get("data_folder_in", ""), options.get("data_folder_out", "")} - {""}
    for folder in sorted(folders):
        if not os.path.isdir(folder):
            return {"status": FAILED, "transport": "filesystem", "error": f"{folder} missing"}
        if not os.access(folder, os.W_OK):
            return {"status": FAILED, "transport": "filesystem", "error": f"{folder} not writable"}
    return {"status": OK, "transport": "filesystem"}


def check_cache() -> dict[str, Any]:
    """DEGRADED, never FAILED, when the cache does not answer: pages and the API read the
    database instead (settings: django-redis IGNORE_EXCEPTIONS), locks fall back to the
    database (polling.cache_lock)."""
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.startswith("django_redis."):
        try:
            get_redis_connection("default").ping()
        except (redis.RedisError, OSError) as exc:
            return {"status": DEGRADED, "backend": "redis", "error": _one_line(exc)}
        return {"status": OK, "backend": "redis"}
    # Other backends (the embedded file cache): a round trip through the Django cache API.
    probe = f"readyz-probe:{os.getpid()}:{time.monotonic()}"
    try:
        cache.set(probe, probe, timeout=5)
        answered = cache.get(probe) == probe
        cache.delete(probe)
    except Exception as exc:  # noqa: BLE001 - any backend error means "cache unavailable"
        return {"status": DEGRADED, "backend": backend, "error": _one_line(exc)}
    if not answered:
        return {"status": DEGRADED, "backend": backend, "error": "the cache did not keep a value"}
    return {"status": OK, "backend": backend.rsplit(".", 1)[-1]}


def check_sweep(now: datetime | None = None, cluster: Cluster | None = None) -> dict[str, Any]:
    """The last sweep of `cluster` (the configured one when None): never FAILED, at worst
    DEGRADED (see above)."""
    now = now or timezone.now()
    stale_after = 3 * float(settings.POLL_INTERVAL)
    try:
        cluster = cluster or facts.configured_cluster()
    except DatabaseError as exc:
        return {"status": DEGRADED, "error": _one_line(exc)}
    if cluster is None:
        return {"status": DEGRADED, "detail": "no sweep yet", "stale_after": stale_after}
    status = _cached_sweep_status(cluster)
    result: dict[str, Any] = {"stale_after": stale_after}
    last_ok = cluster.last_sweep_ok_at
    if status is not None:
        result.update(
            last_at=status.get("at"),
            last_ok=bool(status.get("ok")),
            duration=status.get("duration"),
            nodes=status.get("nodes"),
            agents_ok=status.get("agents_ok"),
            agents_failed=status.get("agents_failed"),
        )
        if status.get("error"):
            result["error"] = status["error"]
        if status.get("ok") and status.get("at"):
            at = datetime.fromisoformat(status["at"])
            last_ok = max(last_ok, at) if last_ok else at
    if last_ok is None:
        result.update(status=DEGRADED, detail="no successful sweep yet")
        return result
    age = (now - last_ok).total_seconds()
    result["last_ok_at"] = last_ok.isoformat()
    result["age"] = round(age, 3)
    if age > stale_after:
        result.update(status=DEGRADED, detail=f"last successful sweep {age:.0f}s ago")
    elif status is not None and not status.get("ok"):
        result.update(status=DEGRADED, detail="last sweep failed")
    else:
        result["status"] = OK
    return result


def check_clusters(now: datetime | None = None) -> dict[str, Any]:
    """Every registered cluster's last sweep (check_sweep), by name: DEGRADED when one of them
    is; a cluster whose API has failed for longer than NICPORTAL_CLUSTER_STALE_AFTER (its NICs
    are `unknown`) says since when. Never FAILED: one cluster's outage is no reason to take the
    portal's web pods out of service."""
    now = now or timezone.now()
    try:
        clusters = [
            cluster
            for cluster in Cluster.objects.filter(enabled=True).order_by("name")
            if cluster_clients.is_registered(cluster)
        ]
    except DatabaseError as exc:
        return {"status": DEGRADED, "error": _one_line(exc)}
    found: dict[str, Any] = {}
    for cluster in clusters:
        check = check_sweep(now, cluster)
        if cluster.unreachable_since is not None:
            check.update(
                status=DEGRADED,
                unreachable_since=cluster.unreachable_since.isoformat(),
                detail="API unreachable: its NICs are unknown",
            )
        found[cluster.name] = check
    degraded = any(check["status"] != OK for check in found.values())
    return {"status": DEGRADED if degraded else OK, "clusters": found}


def _cached_sweep_status(cluster: Cluster) -> dict | None:
    # The cache is Redis in production: when it is down, fall back to the Cluster row (the
    # cache check reports the outage).
    try:
        return polling.sweep_status(cluster)
    except Exception:  # noqa: BLE001 - any cache backend error means "no cached status"
        return None


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {
        "database": check_database(),
        "broker": check_broker(),
        "cache": check_cache(),
        "sweep": check_sweep(),
        "clusters": check_clusters(),
    }
    failed = sorted(name for name, check in checks.items() if check["status"] == FAILED)
    if failed:
        overall = FAILED
    elif any(check["status"] == DEGRADED for check in checks.values()):
        overall = DEGRADED
    else:
        overall = OK
    body = {"status": overall, "failed": failed, "checks": checks}
    return JsonResponse(body, status=503 if failed else 200)


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


# --- metrics ---------------------------------------------------------------------------------


class InventoryCollector(Collector):
    """Gauges read from the database and the sweep status in the cache, one label set per
    cluster. Every OwnershipState is exported, zeros included, so that a dashboard's series do
    not vanish when the last free NIC is taken."""

    def collect(self) -> Iterator[Metric]:
        clusters = list(Cluster.objects.order_by("name"))
        names = {cluster.pk: cluster.name for cluster in clusters}

        nodes = GaugeMetricFamily(
            "nicportal_nodes", "Nodes present in the cluster.", labels=["cluster"]
        )
        stale = GaugeMetricFamily(
            "nicportal_nodes_stale",
            "Nodes whose agent has not answered within NICPORTAL_AGENT_STALE_AFTER.",
            labels=["cluster"],
        )
        agent_errors = GaugeMetricFamily(
            "nicportal_agent_errors",
            "Nodes whose last agent poll failed (agent_error set).",
            labels=["cluster"],
        )
        node_counts = {
            row["cluster"]: row
            for row in Node.objects.filter(in_cluster=True)
            .values("cluster")
            .annotate(
                total=Count("id"),
                stale=Count("id", filter=Q(stale=True)),
                errors=Count("id", filter=~Q(agent_error="")),
            )
        }
        for pk, name in names.items():
            row = node_counts.get(pk, {"total": 0, "stale": 0, "errors": 0})
            nodes.add_metric([name], row["total"])
            stale.add_metric([name], row["stale"])
            agent_errors.add_metric([name], row["errors"])
        yield nodes
        yield stale
        yield agent_errors

        rogues = GaugeMetricFamily(
            "nicportal_rogue_agents",
            "Running pods that look like a node agent but are not the agent DaemonSet's pod on "
            "their node (never contacted; listed on the node page).",
            labels=["cluster"],
        )
        rogue_counts: dict[int, int] = dict.fromkeys(names, 0)
        for pk, rows in (
            Node.objects.filter(in_cluster=True)
            .exclude(rogue_agents=[])
            .values_list("cluster", "rogue_agents")
        ):
            rogue_counts[pk] = rogue_counts.get(pk, 0) + len(rows)
        for pk, name in names.items():
            rogues.add_metric([name], rogue_counts[pk])
        yield rogues

        contradictions = GaugeMetricFamily(
            "nicportal_snapshot_contradictions",
            "Warnings where a node's latest snapshot contradicts the Kubernetes API's view of "
            "the node (listed on the node page; rules/crosscheck.py).",
            labels=["cluster", "code"],
        )
        found = {(pk, code): 0 for pk in names for code in crosscheck.WARNING_CODES}
        for pk, rows in (
            Node.objects.filter(in_cluster=True)
            .exclude(findings=[])
            .values_list("cluster", "findings")
        ):
            for finding in rows:
                if finding.get("severity") == crosscheck.WARNING:
                    key = (pk, finding.get("code", ""))
                    found[key] = found.get(key, 0) + 1
        for (pk, code), count in sorted(found.items()):
            if pk in names:
                contradictions.add_metric([names[pk], code], count)
        yield contradictions

        interfaces = GaugeMetricFamily(
            "nicportal_interfaces",
            "Interfaces by ownership state.",
            labels=["cluster", "state"],
        )
        by_state: dict[tuple[int, str], int] = {
            (row["node__cluster"], row["state"]): row["n"]
            for row in Interface.objects.values("node__cluster", "state").annotate(n=Count("id"))
        }
        for pk, name in names.items():
            for state in OwnershipState.values:
                interfaces.add_metric([name, state], by_state.get((pk, state), 0))
        yield interfaces

        reservations = GaugeMetricFamily(
            "nicportal_reservations_active",
            "Reservations not yet released.",
            labels=["cluster"],
        )
        active = {
            row["interface__node__cluster"]: row["n"]
            for row in Reservation.objects.filter(released_at__isnull=True)
            .values("interface__node__cluster")
            .annotate(n=Count("id"))
        }
        for pk, name in names.items():
            reservations.add_metric([name], active.get(pk, 0))
        yield reservations

        breaches = GaugeMetricFamily(
            "nicportal_reservation_breaches",
            "Reserved NICs held by a pod that is not the reserving team's (Interface.breach).",
            labels=["cluster"],
        )
        breached = {
            row["node__cluster"]: row["n"]
            for row in Interface.objects.exclude(breach="")
            .values("node__cluster")
            .annotate(n=Count("id"))
        }
        for pk, name in names.items():
            breaches.add_metric([name], breached.get(pk, 0))
        yield breaches

        yield from self._sweep_metrics(clusters)

    def _sweep_metrics(self, clusters: list[Cluster]) -> Iterator[Metric]:
        last_ok = GaugeMetricFamily(
            "nicportal_last_sweep_timestamp_seconds",
            "Unix time of the last successful sweep.",
            labels=["cluster"],
        )
        last_ok_flag = GaugeMetricFamily(
            "nicportal_last_sweep_ok", "1 when the last sweep succeeded.", labels=["cluster"]
        )
        duration = GaugeMetricFamily(
            "nicportal_sweep_duration_seconds",
            "Duration of the last sweep.",
            labels=["cluster"],
        )
        answering = GaugeMetricFamily(
            "nicportal_agents_answering",
            "Agents that answered during the last sweep.",
            labels=["cluster"],
        )
        failed = GaugeMetricFamily(
            "nicportal_agents_failed",
            "Agents that failed during the last sweep.",
            labels=["cluster"],
        )
        rows = GaugeMetricFamily(
            "nicportal_sweep_rows_written",
            "Rows written by the last sweep (0 on a warm sweep).",
            labels=["cluster"],
        )
        for cluster in clusters:
            status = _cached_sweep_status(cluster)
            ok_at = cluster.last_sweep_ok_at
            if status is not None:
                if status.get("ok") and status.get("at"):
                    at = datetime.fromisoformat(status["at"])
                    ok_at = max(ok_at, at) if ok_at else at
                last_ok_flag.add_metric([cluster.name], 1 if status.get("ok") else 0)
                duration.add_metric([cluster.name], float(status.get("duration") or 0.0))
                answering.add_metric([cluster.name], int(status.get("agents_ok") or 0))
                failed.add_metric([cluster.name], int(status.get("agents_failed") or 0))
                rows.add_metric([cluster.name], int(status.get("rows_written") or 0))
            elif cluster.last_sweep_duration is not None:
                duration.add_metric([cluster.name], cluster.last_sweep_duration)
            if ok_at is not None:
                last_ok.add_metric([cluster.name], ok_at.timestamp())
        unreachable = GaugeMetricFamily(
            "nicportal_cluster_unreachable",
            "1 while the cluster's API has not answered for longer than "
            "NICPORTAL_CLUSTER_STALE_AFTER: its NICs are unknown.",
            labels=["cluster"],
        )
        for cluster in clusters:
            unreachable.add_metric([cluster.name], 1 if cluster.unreachable_since else 0)
        yield from (last_ok, last_ok_flag, duration, answering, failed, rows, unreachable)


class ScrapeCollector(Collector):
    """How long this scrape took: a slow /metrics is the first sign of a slow database."""

    def __init__(self, started: float) -> None:
        self.started = started

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "nicportal_scrape_duration_seconds",
            "Time spent reading the inventory for this scrape.",
            value=time.monotonic() - self.started,
        )


def render_metrics() -> bytes:
    started = time.monotonic()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(InventoryCollector())
    registry.register(admission.AdmissionCollector())
    # Registered last, so it measures the inventory queries above.
    registry.register(ScrapeCollector(started))
    return generate_latest(registry)


def _authorized(request: HttpRequest) -> bool:
    token = getattr(settings, "METRICS_TOKEN", "")
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, offered = header.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(
        offered.strip().encode(), token.encode()
    )


@never_cache
@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    if not _authorized(request):
        response = HttpResponse("bearer token required\n", status=401, content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(render_metrics(), content_type=CONTENT_TYPE_LATEST)
