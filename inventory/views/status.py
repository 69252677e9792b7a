"""The last sweep in every page's header: when it ran and how it went, refreshed while the page
is open. Read through inventory.health.check_sweep() (the same view of the sweep as /readyz), so
the header and the readiness probe never disagree."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.functional import SimpleLazyObject
from django.views import View

from inventory import health
from inventory.views.common import PortalLoginRequiredMixin

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


def sweep_summary() -> SweepSummary:
    check = health.check_sweep()
    raw_at = check.get("last_at") or check.get("last_ok_at")
    at = _parse(raw_at)
    return SweepSummary(
        at=at,
        ok=bool(check.get("last_ok", at is not None)) and not check.get("error"),
        stale=check.get("status") == health.DEGRADED and at is not None,
        error=str(check.get("error") or ""),
        nodes=int(check.get("nodes") or 0),
        agents_ok=int(check.get("agents_ok") or 0),
        agents_failed=int(check.get("agents_failed") or 0),
        detail=str(check.get("detail") or ""),
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
