"""Limit/offset pagination that rejects what it cannot honour instead of silently ignoring it:
`?limit=abc` or `?limit=100000` answers 400 naming the parameter (DRF's own class falls back to
the default page, which hides typos in scripts). The interface list adds keyset cursors."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from inventory.read import pages

MAX_LIMIT = 1000
# PostgreSQL's OFFSET is a bigint and SQLite's an int64; no listing here comes near this.
MAX_OFFSET = 10**9


class BoundedLimitOffsetPagination(LimitOffsetPagination):
    max_limit = MAX_LIMIT

    def get_limit(self, request: Request) -> int:
        return self._bounded(request, self.limit_query_param, 1, MAX_LIMIT, self.default_limit)

    def get_offset(self, request: Request) -> int:
        return self._bounded(request, self.offset_query_param, 0, MAX_OFFSET, 0)

    def _bounded(self, request: Request, name: str, low: int, high: int, default: int) -> int:
        raw = request.query_params.get(name)
        if raw is None:
            return default
        try:
            value = int(raw)
        except ValueError:
            raise ValidationError({name: [f"Must be an integer from {low} to {high}."]}) from None
        if not low <= value <= high:
            raise ValidationError({name: [f"Must be an integer from {low} to {high}."]})
        return value

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.limit_query_param:
                parameter["schema"].update(minimum=1, maximum=MAX_LIMIT)
            elif parameter["name"] == self.offset_query_param:
                parameter["schema"].update(minimum=0, maximum=MAX_OFFSET)
        return parameters


class InterfacePagination(BoundedLimitOffsetPagination):
    """The interface list's pages (read/pages.py): `cursor=` opts into keyset pages (`next` and
    `previous` links, no `count`: a cursor page costs the same at any depth), `limit`/`offset`
    stays as it was, served from the sort's index. The view hands over the filtered, unjoined
    queryset and gets the ids of the page back; it reads those rows itself."""

    cursor_query_param = "cursor"

    def page_ids(self, queryset: QuerySet, request: Request, sort: pages.Sort) -> list[int]:
        self.request = request
        self.limit = self.get_limit(request)
        self.sort = sort
        raw_cursor = request.query_params.get(self.cursor_query_param)
        self.cursor_mode = raw_cursor is not None
        if self.cursor_mode:
            cursor = None
            if raw_cursor:
                try:
                    cursor = pages.decode_cursor(raw_cursor, sort)
                except pages.BadCursor as exc:
                    message = f"Invalid cursor: {exc}."
                    raise ValidationError({self.cursor_query_param: [message]}) from None
            self.keyset = pages.keyset_page_ids(queryset, sort, cursor=cursor, limit=self.limit)
            return self.keyset.ids
        self.offset = self.get_offset(request)
        version = pages.inventory_version()
        self.count = pages.cached_count(queryset, version)
        return pages.offset_page_ids(
            queryset, sort, offset=self.offset, limit=self.limit, version=version
        )

    def get_paginated_response(self, data: Any) -> Response:
        if not self.cursor_mode:
            return super().get_paginated_response(data)
        return Response(
            {
                "next": self._cursor_link(self.keyset.next),
                "previous": self._cursor_link(self.keyset.previous),
                "results": data,
            }
        )

    def _cursor_link(self, cursor: pages.Cursor | None) -> str | None:
        if cursor is None:
            return None
        url = self.request.build_absolute_uri()
        return replace_query_param(url, self.cursor_query_param, cursor.encode())

    def get_paginated_response_schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        answer = super().get_paginated_response_schema(schema)
        # A cursor page has no count.
        answer["required"] = [name for name in answer.get("required", []) if name != "count"]
        answer["properties"]["count"]["description"] = "Matching rows (offset pages only)."
        return answer

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            *super().get_schema_operation_parameters(view),
            {
                "name": self.cursor_query_param,
                "required": False,
                "in": "query",
                "description": "Keyset paging: empty for the first page, then the `next` or "
                "`previous` link's value (a cursor this list did not hand out is a 400). "
                "Answers have no `count`; `offset` is ignored.",
                "schema": {"type": "string"},
            },
        ]
