"""The last sweep in every page's header: when it ran and how it went, refreshed while the page
is open. It reads what the sweep records (services.polling.sweep_status in the cache, the
Cluster row when the cache has nothing or is down), as /readyz does."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.views import View

from inventory.models import Cluster
from inventory.services import polling
from inventory.web.views.common import PortalLoginRequiredMixin

TEMPLATE = "inventory/_sweep_status.html"
REFRESH = "10s"


@dataclass(frozen=True)
class SweepSummary:
    at: datetime | None  # when the last sweep ended; None: no sweep recorded yet
    ok: bool  # the cluster answered (agents may still have failed, see agents_failed)
    stale: bool  # no successful sweep for 3 poll intervals: the pages show old facts
    error: str
    nodes: int
    agents_ok: int
    agents_failed: int
    detail: str
    # The other enabled clusters whose API has not answered for a while (their NICs unknown).
    unreachable: tuple[str, ...] = ()


def sweep_summary() -> SweepSummary:
    try:
        # The configured cluster and every enabled one, in one query.
        clusters = list(
            Cluster.objects.filter(Q(name=settings.CLUSTER_NAME) | Q(enabled=True)).order_by("name")
        )
    except DatabaseError as exc:
        return SweepSummary(None, False, False, str(exc)[:300], 0, 0, 0, "database unavailable")
    cluster = next((c for c in clusters if c.name == settings.CLUSTER_NAME), None)
    unreachable = tuple(
        c.name for c in clusters if c is not cluster and c.unreachable_since is not None
    )
    if cluster is None:
        return SweepSummary(None, True, False, "", 0, 0, 0, "no sweep yet", unreachable)
    try:
        status = polling.sweep_status(cluster) or {}
    # The cache is Redis in production: when it is down the page must still render, from the
    # Cluster row (written on errors and every few minutes).
    except Exception:  # noqa: BLE001 - any cache backend error means "no cached status"
        status = {}
    at = _parse(status.get("at")) or cluster.last_sweep_at
    ok = bool(status.get("ok")) if status else not cluster.last_error
    last_ok = cluster.last_sweep_ok_at
    if status.get("ok") and at is not None:
        last_ok = max(last_ok, at) if last_ok else at
    stale_after = 3 * float(settings.POLL_INTERVAL)
    stale = last_ok is None or (timezone.now() - last_ok).total_seconds() > stale_after
    return SweepSummary(
        at=at,
        ok=ok,
        stale=at is not None and stale,
        error=str(status.get("error") or ("" if status else cluster.last_error)),
        nodes=int(status.get("nodes") or 0),
        agents_ok=int(status.get("agents_ok") or 0),
        agents_failed=int(status.get("agents_failed") or 0),
        detail=f"no successful sweep for {stale_after:.0f} s" if stale else "",
        unreachable=unreachable,
    )


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def sweep_context(request: HttpRequest) -> dict[str, Any]:
    """Context processor: `sweep` for base.html's header, read only if the page shows it (a
    logged-in page, not the fragments that live updates fetch)."""
    return {"sweep": SimpleLazyObject(sweep_summary), "sweep_refresh": REFRESH}


class SweepStatusView(PortalLoginRequiredMixin, View):
    """GET: the header's sweep status alone, polled by every page."""

    def get(self, request: HttpRequest) -> HttpResponse:
        return render(request, TEMPLATE)
