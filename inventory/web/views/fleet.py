"""The fleet view: every interface of every node, filtered by InterfaceFilterSet (the same
filters as the API), sorted, paginated, counted per state, exportable as CSV.

Built for 320,000 interfaces: the per-state counts are one GROUP BY over the filtered rows (cached
per inventory version) and the page total is their sum (no separate COUNT(*)); a page's ids come
from the sort's index (read/pages.py: an offset over ids for a jump, a keyset cursor for Prev and
Next), then its rows with their node and cluster joined plus one query for their active
reservations; every sort ends in a unique key so that pages are stable.
"""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterator
from typing import Any

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db.models import Count, Max, Prefetch, QuerySet
from django.http import HttpRequest, QueryDict, StreamingHttpResponse
from django.utils.functional import cached_property
from django.views import View
from django.views.generic import ListView

from inventory.choices import OwnershipState
from inventory.models import Interface, Node, Reservation
from inventory.read import pages
from inventory.read.filtersets import InterfaceFilterSet
from inventory.web.views.common import (
    LiveMixin,
    PageMixin,
    PortalLoginRequiredMixin,
    history_version,
    wants_fragment,
)

# Sort key in the URL -> the sort of read/pages.py (its columns end in the id, so pages are
# stable, and each has its index).
SORTS: dict[str, str] = {
    "node": "node__name",
    "name": "name",
    "state": "state",
    "speed": "speed_mbps",
    "driver": "driver",
    "pci": "pci_address",
    "changed": "state_changed_at",
}
DEFAULT_SORT = "node"
SORT_COLUMNS = [
    ("node", "Node"),
    ("name", "Interface"),
    ("state", "State"),
    ("speed", "Speed"),
    ("driver", "Driver"),
    ("pci", "PCI"),
]
PAGE_SIZES = (25, 50, 100, 200)


def sort_key(params: QueryDict) -> str:
    """The requested sort if it is one we know (`-` prefix: descending), else the default."""
    requested = params.get("sort", DEFAULT_SORT)
    return requested if requested.lstrip("-") in SORTS else DEFAULT_SORT


def page_sort(params: QueryDict) -> pages.Sort:
    key = sort_key(params)
    return pages.Sort(SORTS[key.lstrip("-")], descending=key.startswith("-"))


def active_reservations() -> Prefetch:
    return Prefetch(
        "reservations",
        queryset=Reservation.objects.filter(released_at__isnull=True).select_related("team"),
        to_attr="active_reservations",
    )


def row_queryset() -> QuerySet:
    """What a row of the page shows: its node, cluster and active reservation."""
    return Interface.objects.select_related("node", "node__cluster").prefetch_related(
        active_reservations()
    )


def fleet_queryset(params: QueryDict) -> tuple[InterfaceFilterSet, QuerySet]:
    """The filtered, sorted interfaces for a query string: shared by the page and the export."""
    filterset = InterfaceFilterSet(params, queryset=row_queryset())
    return filterset, pages.sorted_by(filterset.qs, page_sort(params))


class CountedPaginator(Paginator):
    """A paginator told its total instead of running COUNT(*) again."""

    def __init__(self, object_list: Any, per_page: int, *, total: int, **kwargs: Any) -> None:
        super().__init__(object_list, per_page, **kwargs)
        self.total = total

    @cached_property
    def count(self) -> int:
        return self.total


COUNTS_TTL = 10  # seconds


def state_counts(params: QueryDict) -> dict[str, int]:
    """Rows per state under every filter except `state` itself, so the state chips show what
    choosing them would give. One GROUP BY over the fleet (tens of ms at 80,000 rows), so it is
    cached per filter, history version and newest interface: every state change appends history
    and interfaces are never deleted, so a cached count is never older than the newest verdict
    or row; a filter on a fact that changed without a state change (a driver, say) may lag by
    COUNTS_TTL seconds."""
    without_state = params.copy()
    for name in ("state", "page", "sort", "per_page", "since", "cursor"):
        without_state.pop(name, None)
    filters = hashlib.blake2b(without_state.urlencode().encode(), digest_size=12).hexdigest()
    newest = Interface.objects.aggregate(newest=Max("id"))["newest"] or 0
    key = f"fleet-counts:{filters}:{history_version()}:{newest}"
    counts = cache.get(key)
    if counts is None:
        filterset = InterfaceFilterSet(without_state, queryset=Interface.objects.all())
        rows = filterset.qs.order_by().values_list("state").annotate(n=Count("id"))
        counts = dict(rows)
        cache.set(key, counts, timeout=COUNTS_TTL)
    return counts


class FleetView(PageMixin, LiveMixin, ListView):
    """A page is chosen on the interface table alone (read/pages.py), then its rows are read:
    `page=N` jumps by an offset over the sort's index, and the Prev/Next links carry a keyset
    `cursor` (with the page number they lead to, for the "page N of M" label), so walking
    the fleet page by page costs the same on page 1,000 as on page 1."""

    template_name = "inventory/fleet.html"
    fragment_name = "results"
    context_object_name = "interfaces"

    def get_queryset(self) -> QuerySet:
        self.filterset = InterfaceFilterSet(self.request.GET, queryset=Interface.objects.all())
        return self.filterset.qs

    def get_paginate_by(self, queryset: QuerySet) -> int:
        try:
            size = int(self.request.GET.get("per_page", 50))
        except ValueError:
            size = 50
        return size if size in PAGE_SIZES else 50

    def paginate_queryset(self, queryset: QuerySet, page_size: int) -> tuple:
        counts = state_counts(self.request.GET)
        chosen = self.filterset.form.cleaned_data.get("state") if self.filterset.is_valid() else []
        self.state_counts = counts
        total = sum(n for state, n in counts.items() if not chosen or state in chosen)
        paginator = CountedPaginator([], page_size, total=total)
        # As Paginator.get_page() would have it, without slicing the queryset: a bad page number
        # is the first page, one past the end the last.
        try:
            number = int(self.request.GET.get("page") or 1)
        except ValueError:
            number = 1
        number = min(max(number, 1), paginator.num_pages)
        sort = page_sort(self.request.GET)
        cursor = self._cursor(sort)
        if cursor is not None:
            window = pages.keyset_page_ids(queryset, sort, cursor=cursor, limit=page_size)
        else:
            offset = (number - 1) * page_size
            window = pages.offset_page(queryset, sort, offset=offset, limit=page_size)
        self.window = window
        rows = pages.rows_in_order(window.ids, row_queryset())
        page = Page(rows, number, paginator)
        return paginator, page, rows, paginator.num_pages > 1

    def _cursor(self, sort: pages.Sort) -> pages.Cursor | None:
        # A cursor that does not fit (edited by hand, or from another sort) is ignored: the
        # page number still says where to go.
        raw = self.request.GET.get("cursor")
        if not raw:
            return None
        try:
            return pages.decode_cursor(raw, sort)
        except pages.BadCursor:
            return None

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        params = self.request.GET
        chosen = set(params.getlist("state"))
        context.update(
            filterset=self.filterset,
            sort=sort_key(params),
            state_chips=[
                {
                    "value": state.value,
                    "label": state.label,
                    "count": self.state_counts.get(state.value, 0),
                    "chosen": state.value in chosen,
                }
                for state in OwnershipState
            ],
            total=context["paginator"].count,
            query=self.query_without("page", "since", "cursor"),
            next_cursor=self.window.next.encode() if self.window.next else "",
            previous_cursor=self.window.previous.encode() if self.window.previous else "",
            sort_columns=SORT_COLUMNS,
            query_without_sort=self.query_without("page", "since", "sort", "cursor"),
        )
        if not wants_fragment(self.request):
            context["node_names"] = Node.objects.order_by("name").values_list("name", flat=True)
        return context

    def query_without(self, *names: str) -> str:
        params = self.request.GET.copy()
        for name in names:
            params.pop(name, None)
        return params.urlencode()


# Spreadsheets run cells that start with these as formulas; node data is untrusted.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "cluster node interface state reason holder team alias mac pci_address driver speed_mbps "
    "kind present state_changed_at"
).split()


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class Echo:
    """A file-like object whose write() hands the line back to the streaming response."""

    def write(self, value: str) -> str:
        return value


def csv_rows(queryset: QuerySet) -> Iterator[list[Any]]:
    yield CSV_COLUMNS
    # iterator(chunk_size) keeps memory flat over 80k rows and still runs the prefetch per chunk.
    for interface in queryset.iterator(chunk_size=2000):
        reservation = next(iter(interface.active_reservations), None)
        yield [
            csv_cell(value)
            for value in (
                interface.node.cluster.name,
                interface.node.name,
                interface.name,
                interface.state,
                interface.reason,
                interface.holder,
                reservation.team.name if reservation else "",
                interface.alias,
                interface.mac,
                interface.pci_address,
                interface.driver,
                interface.speed_mbps if interface.speed_mbps is not None else "",
                interface.kind,
                interface.present,
                interface.state_changed_at.isoformat(),
            )
        ]


class FleetExportView(PortalLoginRequiredMixin, View):
    """All rows matching the fleet view's filters (not just one page), streamed."""

    def get(self, request: HttpRequest) -> StreamingHttpResponse:
        _, queryset = fleet_queryset(request.GET)
        writer = csv.writer(Echo())
        response = StreamingHttpResponse(
            (writer.writerow(row) for row in csv_rows(queryset)), content_type="text/csv"
        )
        response["Content-Disposition"] = 'attachment; filename="nicportal-interfaces.csv"'
        return response
