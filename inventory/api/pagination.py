"""Limit/offset pagination that rejects what it cannot honour instead of silently ignoring it:
`?limit=abc` or `?limit=100000` answers 400 naming the parameter (DRF's own class falls back to
the default page, which hides typos in scripts)."""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import LimitOffsetPagination
from rest_framework.request import Request

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
