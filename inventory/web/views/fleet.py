"""The fleet view: every interface of every node, filtered by InterfaceFilterSet (the same
filters as the API), sorted, paginated, counted per state, exportable as CSV.

Built for 320,000 interfaces: the per-state counts are one GROUP BY over the filtered rows (cached
per inventory version) and the page total is their sum (no separate COUNT(*)); a page's ids come
from the sort's index (read/pages.py: an offset over ids for a jump, a keyset cursor for Prev and
Next), then its rows in one query, with their cluster's name and their active reservation's team
joined as columns; every sort ends in a unique key so that pages are stable. The rows and the
per-node bars are rendered by template tags (templatetags/nicportal.py), not by the template
engine variable by variable.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.core.cache import cache
from django.core.paginator import Page, Paginator
from django.db.models import Count, Q, QuerySet
from django.http import HttpRequest, QueryDict, StreamingHttpResponse
from django.utils.functional import cached_property
from django.views import View
from django.views.generic import ListView

from inventory.choices import OwnershipState
from inventory.models import Cluster, Interface, Node
from inventory.queries import active_reservations
from inventory.read import exports, pages
from inventory.read.filtersets import InterfaceFilterSet
from inventory.web import diagrams
from inventory.web.views.common import (
    LiveMixin,
    PageMixin,
    PortalLoginRequiredMixin,
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
NODE_SUGGESTIONS = 2000


def sort_key(params: QueryDict) -> str:
    """The requested sort if it is one we know (`-` prefix: descending), else the default."""
    requested = params.get("sort", DEFAULT_SORT)
    return requested if requested.lstrip("-") in SORTS else DEFAULT_SORT


def page_sort(params: QueryDict) -> pages.Sort:
    key = sort_key(params)
    return pages.Sort(SORTS[key.lstrip("-")], descending=key.startswith("-"))


def row_queryset() -> QuerySet:
    """What a row of the export shows: its node's and cluster's names and its
    active reservation. The node's JSON facts (labels, CNI, findings, addresses) are not read:
    decoding them for every row cost more than the rest of the row."""
    return (
        Interface.objects.select_related("node", "node__cluster")
        .defer(*(f"node__{name}" for name in Node.JSON_FACTS))
        .prefetch_related(active_reservations())
    )


# The columns a row of the page shows (fleet_rows in templatetags/nicportal.py), plus node_id so
# that `interface.node` stays one lookup away.
PAGE_ROW_COLUMNS = (
    "node_id", "node_name", "identity", "name", "alias", "mac", "driver", "pci_address",
    "speed_mbps", "present", "state", "reason", "holder", "breach",
)  # fmt: skip


def page_row_queryset() -> QuerySet:
    """A page's rows in one query, with only what they show: the interface's own copy of its
    node's name, its cluster's name and its active reservation's team joined as columns
    (read/pages.py), no Node, Cluster or Reservation objects. Building those, and decoding the
    other columns (dates, JSON), was half of the page's reading time."""
    return pages.with_active_reservation(Interface.objects.only(*PAGE_ROW_COLUMNS))


def fleet_queryset(params: QueryDict) -> tuple[InterfaceFilterSet, QuerySet]:
    """The filtered, sorted interfaces for a query string, with what a row shows (the export)."""
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


def without_state(params: QueryDict) -> tuple[QueryDict, str]:
    """The query without `state` (and paging), and a short digest of it for cache keys."""
    rest = params.copy()
    for name in ("state", "page", "sort", "per_page", "since", "cursor"):
        rest.pop(name, None)
    return rest, hashlib.blake2b(rest.urlencode().encode(), digest_size=12).hexdigest()


def state_counts(params: QueryDict, stamp: str | None = None) -> dict[str, int]:
    """Rows per state under every filter except `state` itself, so the state chips show what
    choosing them would give. One GROUP BY over the fleet (tens of ms at 80,000 rows), so it is
    cached per filter, history version and newest interface: every state change appends history
    and interfaces are never deleted, so a cached count is never older than the newest verdict
    or row; a filter on a fact that changed without a state change (a driver, say) may lag by
    COUNTS_TTL seconds."""
    rest, filters = without_state(params)
    key = f"fleet-counts:{filters}:{stamp or pages.inventory_version()}"
    counts = cache.get(key)
    if counts is None:
        filterset = InterfaceFilterSet(rest, queryset=Interface.objects.all())
        rows = filterset.qs.order_by().values_list("state").annotate(n=Count("id"))
        counts = dict(rows)
        cache.set(key, counts, timeout=COUNTS_TTL)
    return counts


def breach_count(params: QueryDict, filterset: InterfaceFilterSet | None = None) -> int:
    """Reservation breaches under every filter but `breach` itself (the chip shows what choosing
    it would give). Breaches are few and a partial index holds them: no cache needed. Without a
    `breach` filter the page's own filterset (if given) already has exactly those filters."""
    if filterset is None or "breach" in params:
        without = params.copy()
        for name in ("breach", "page", "sort", "per_page", "since", "cursor"):
            without.pop(name, None)
        filterset = InterfaceFilterSet(without, queryset=Interface.objects.all())
    return filterset.qs.exclude(breach="").order_by().count()


BAR_NODES = 24


def node_state_counts(
    params: QueryDict, stamp: str | None = None
) -> tuple[dict[tuple[str, str], dict[str, int]], int]:
    """Free, reserved and in-pod NICs of the first BAR_NODES nodes (by name), keyed by (node,
    cluster) since node names are unique per cluster only, under every filter but `state`, and
    how many nodes match in all. Cached like state_counts."""
    rest, filters = without_state(params)
    key = f"fleet-node-bars:{filters}:{stamp or pages.inventory_version()}"
    cached = cache.get(key)
    if cached is None:
        rows = InterfaceFilterSet(rest, queryset=Interface.objects.all()).qs.order_by()
        # The interface row's copy of its node's name and its node id: no join to the nodes;
        # the clusters of the nodes shown come after, in one query.
        per_node = rows.values("node_name", "node_id").annotate(
            **{
                state: Count("id", filter=Q(state=state))
                for state in (OwnershipState.FREE, OwnershipState.RESERVED, OwnershipState.POD)
            }
        )
        shown = list(per_node.order_by("node_name", "node_id")[:BAR_NODES])
        clusters = dict(
            Node.objects.filter(pk__in=[row["node_id"] for row in shown]).values_list(
                "pk", "cluster__name"
            )
        )
        counts = {
            (row.pop("node_name"), clusters.get(row.pop("node_id"), "")): row for row in shown
        }
        total = rows.values("node_id").distinct().count() if len(shown) == BAR_NODES else 0
        cached = (counts, max(total, len(counts)))
        cache.set(key, cached, timeout=COUNTS_TTL)
    return cached


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
        self.stamp = pages.inventory_version()
        counts = state_counts(self.request.GET, self.stamp)
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
            window = pages.offset_page(
                queryset, sort, offset=offset, limit=page_size, version=self.stamp
            )
        self.window = window
        rows = pages.rows_in_order(window.ids, page_row_queryset())
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
            breach_only=params.get("breach") == "true",
            breach_count=breach_count(params, self.filterset),
            query=self.query_without("page", "since", "cursor"),
            # The live refresh re-reads the page being looked at (its number and cursor kept).
            poll_query=self.query_without("since"),
            next_cursor=self.window.next.encode() if self.window.next else "",
            previous_cursor=self.window.previous.encode() if self.window.previous else "",
            sort_columns=SORT_COLUMNS,
            query_without_sort=self.query_without("page", "since", "sort", "cursor"),
        )
        # The cluster filter and column appear once the portal holds more than one cluster (or a
        # cluster is asked for): a single-cluster portal's page stays as it was.
        cluster_names = list(Cluster.objects.order_by("name").values_list("name", flat=True))
        context.update(
            cluster_names=cluster_names,
            several_clusters=len(cluster_names) > 1 or bool(params.get("cluster")),
        )
        bar_counts, bar_total = node_state_counts(params, self.stamp)
        context.update(node_bars=diagrams.node_bars(bar_counts), node_bar_total=bar_total)
        if not wants_fragment(self.request):
            # Suggestions for the node filter, up to NODE_SUGGESTIONS names: a 20,000-node fleet's
            # would be 600 kB of every page. Beyond that the field takes a typed name.
            names = list(
                Node.objects.order_by("name").values_list("name", flat=True)[: NODE_SUGGESTIONS + 1]
            )
            context["node_names"] = names if len(names) <= NODE_SUGGESTIONS else []
        return context

    def query_without(self, *names: str) -> str:
        params = self.request.GET.copy()
        for name in names:
            params.pop(name, None)
        return params.urlencode()


class FleetExportView(PortalLoginRequiredMixin, View):
    """All rows matching the fleet view's filters (not just one page), streamed."""

    def get(self, request: HttpRequest) -> StreamingHttpResponse:
        _, queryset = fleet_queryset(request.GET)
        return exports.interfaces_csv_response(queryset)
