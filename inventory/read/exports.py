"""Interfaces as CSV, for spreadsheets: the fleet page's "Export CSV" and the API's
`GET /api/v1/interfaces/export/` (token or session) write the same columns, every row that
matches the filters (not one page), streamed so that 80,000 rows keep memory flat."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse

from inventory.models import Interface
from inventory.queries import active_reservations

FILENAME = "nicportal-interfaces.csv"
# Spreadsheets run cells that start with these as formulas; node data is untrusted.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
CSV_COLUMNS = (
    "cluster node interface state reason holder team breach alias mac pci_address driver "
    "speed_mbps kind present state_changed_at sriov_role pf_pci_address vf_index"
).split()


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


class Echo:
    """A file-like object whose write() hands the line back to the streaming response."""

    def write(self, value: str) -> str:
        return value


def for_export(queryset: QuerySet[Interface]) -> QuerySet[Interface]:
    """What csv_rows reads besides the interface: its node, cluster and active reservation."""
    return queryset.select_related("node__cluster").prefetch_related(active_reservations())


def csv_rows(queryset: QuerySet[Interface]) -> Iterator[list[Any]]:
    """The header, then one row per interface of `queryset` (see for_export)."""
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
                interface.breach,
                interface.alias,
                interface.mac,
                interface.pci_address,
                interface.driver,
                interface.speed_mbps if interface.speed_mbps is not None else "",
                interface.kind,
                interface.present,
                interface.state_changed_at.isoformat(),
                interface.sriov_role,
                interface.pf_pci_address,
                interface.vf_index if interface.vf_index is not None else "",
            )
        ]


def interfaces_csv_response(queryset: QuerySet[Interface]) -> StreamingHttpResponse:
    writer = csv.writer(Echo())
    response = StreamingHttpResponse(
        (writer.writerow(row) for row in csv_rows(queryset)), content_type="text/csv"
    )
    response["Content-Disposition"] = f'attachment; filename="{FILENAME}"'
    return response
