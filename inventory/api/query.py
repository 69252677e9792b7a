"""Strict query strings for the API: a parameter the schema types (boolean, number, date-time,
choice) must hold such a value, and a single-valued parameter may appear once. django-filter
itself silently ignores `?active=maybe`, `?speed_min=` or `?stale=1&stale=0`, which turns a
script's typo into a wrong answer instead of a 400 that names the parameter."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import django_filters
from django_filters.rest_framework import DjangoFilterBackend
from django_filters.utils import get_model_field
from rest_framework.exceptions import ValidationError
from rest_framework.filters import BaseFilterBackend
from rest_framework.request import Request

from inventory.read import pages

# The database columns behind number filters are at most 64-bit integers.
NUMBER_LIMIT = 2**63 - 1
BOOLEAN_VALUES = {"true", "false"}
SINGLE_VALUED = ("limit", "offset", "ordering", "fields", "brief", "cursor")


class StrictDjangoFilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend (same FilterSets as the UI) that first checks the raw query string
    against the filters' types. A view may allow extra words for a boolean filter with
    `filter_extra_values = {"active": {"all"}}`."""

    def get_filterset(self, request: Request, queryset: Any, view: Any) -> Any:
        filterset = super().get_filterset(request, queryset, view)
        filters = filterset.filters if filterset is not None else {}
        check_query(
            request, filters, getattr(view, "filter_extra_values", {}), model=queryset.model
        )
        return filterset


def check_query(
    request: Request, filters: dict[str, Any], extra: dict[str, set[str]], *, model: Any = None
) -> None:
    errors: dict[str, list[str]] = {}
    params = request.query_params
    for name in params:
        values = params.getlist(name)
        declared = filters.get(name)
        if len(values) > 1 and (
            name in SINGLE_VALUED
            or (
                declared is not None
                and not isinstance(declared, django_filters.MultipleChoiceFilter)
            )
        ):
            errors[name] = ["Give this parameter once."]
            continue
        if declared is None:
            continue
        for value in values:
            problem = _value_problem(declared, value, extra.get(name, set()), model)
            if problem:
                errors[name] = [problem]
                break
    if errors:
        raise ValidationError(errors)


def integer_column(model: Any, field_name: str) -> bool:
    if field_name == "id" or field_name.endswith("_id"):
        return True
    field = get_model_field(model, field_name) if model is not None else None
    return field is not None and (
        field.is_relation
        or "Integer" in field.get_internal_type()
        or "Auto" in field.get_internal_type()
    )


def _value_problem(declared: Any, value: str, extra: set[str], model: Any) -> str:
    if value in extra:
        return ""
    if isinstance(declared, django_filters.BooleanFilter):
        return "" if value.lower() in BOOLEAN_VALUES else "Use true or false."
    if isinstance(declared, django_filters.NumberFilter):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return "A number is required."
        if not number.is_finite() or abs(number) > NUMBER_LIMIT:
            return f"A number between -{NUMBER_LIMIT} and {NUMBER_LIMIT} is required."
        if integer_column(model, declared.field_name) and number != number.to_integral_value():
            return "A whole number is required."
        return ""
    if isinstance(declared, django_filters.ChoiceFilter | django_filters.MultipleChoiceFilter):
        return "" if value else "Choose a value."
    if isinstance(declared, django_filters.IsoDateTimeFilter | django_filters.DateTimeFilter):
        return "" if value else "A date and time is required."
    return ""


class InterfaceSortFilter(BaseFilterBackend):
    """`ordering` for the interface list: one of read.pages.SORTS, `-` for descending. Each
    sort has its index and ends in the id, so pages are stable and a deep one costs what the
    first costs. An unknown or combined ordering is a 400 naming the choices (DRF's
    OrderingFilter silently ignores what it does not know)."""

    ordering_param = "ordering"

    def filter_queryset(self, request: Request, queryset: Any, view: Any) -> Any:
        return pages.sorted_by(queryset, requested_sort(request))

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        return [
            {
                "name": self.ordering_param,
                "required": False,
                "in": "query",
                "description": "Sort by one field (`-` for descending); ties are broken by "
                f"node, name and id. Default `{pages.DEFAULT_SORT}`.",
                "schema": {"type": "string", "enum": pages.sort_choices()},
            }
        ]


def requested_sort(request: Request) -> pages.Sort:
    raw = request.query_params.get(InterfaceSortFilter.ordering_param)
    try:
        return pages.parse_sort(raw)
    except ValueError:
        raise ValidationError(
            {
                InterfaceSortFilter.ordering_param: [
                    f"Unknown ordering {raw!r}; use one of: {', '.join(pages.sort_choices())}."
                ]
            }
        ) from None
