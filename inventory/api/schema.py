"""The API's OpenAPI generation: drf-spectacular's AutoSchema plus what every operation can
answer (400 for bad input, 401, 403, 404 on paths with an id) and the bounds the API enforces on
query parameters, so that the schema is a true contract (schemathesis checks it)."""

from __future__ import annotations

from typing import Any

import django_filters
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema

from inventory.api.fields import StrictSerializer
from inventory.api.query import NUMBER_LIMIT, integer_column

ERROR_BODY = {
    "type": "object",
    "description": "`detail` for 401/403/404; for 400 one key per bad field with its messages.",
    "additionalProperties": True,
}
# No control character (tab and line breaks aside) in any text the API takes: the rule of
# inventory.rules.bounded_json.CONTROL, enforced by nicportal.middleware (query parameters and
# paths) and nicportal.parsers (bodies), written into the schema so that the contract says it.
TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f\\u007f]*$"

DEFAULT_ERRORS = {
    "400": "Bad input: the body names each field (or query parameter) and what is wrong.",
    "401": "No credentials, or a token that is unknown or expired.",
    "403": "Authenticated, but not allowed (team membership).",
}


class ApiAutoSchema(AutoSchema):
    def _get_response_bodies(self, direction: Any = "response") -> dict[str, Any]:
        responses = super()._get_response_bodies(direction)
        errors = dict(DEFAULT_ERRORS)
        if "{" in self.path:
            errors["404"] = "No such object."
        for code, description in errors.items():
            responses.setdefault(
                code,
                {
                    "content": {"application/json": {"schema": ERROR_BODY}},
                    "description": description,
                },
            )
        return responses

    def get_operation(self, *args: Any, **kwargs: Any) -> dict[str, Any] | None:
        operation = super().get_operation(*args, **kwargs)
        for parameter in (operation or {}).get("parameters", []):
            _constrain_text(parameter.get("schema", {}))
        return operation

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        # With `?fields=`/`?brief=` any field may be absent from a response.
        if direction == "response" and getattr(serializer, "selectable_fields", False):
            schema.pop("required", None)
        if direction == "request":
            if isinstance(serializer, StrictSerializer):
                schema["additionalProperties"] = False
            for field_schema in schema.get("properties", {}).values():
                _constrain_text(field_schema)
                _constrain_text(field_schema.get("items", {}))
        return schema

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        parameters = super()._get_filter_parameters()
        filterset_class = getattr(self.view, "filterset_class", None)
        declared = filterset_class.base_filters if filterset_class is not None else {}
        model = filterset_class._meta.model if filterset_class is not None else None
        for parameter in parameters:
            schema = parameter.get("schema", {})
            number_filter = declared.get(parameter["name"])
            # django-filter's NumberFilter is a decimal; on an id or integer column the API
            # accepts whole numbers only (query.py), so say so.
            if (
                isinstance(number_filter, django_filters.NumberFilter)
                and schema.get("type") == "number"
                and integer_column(model, number_filter.field_name)
            ):
                schema["type"] = "integer"
                schema.pop("format", None)
            if schema.get("type") in ("number", "integer"):
                schema.setdefault("minimum", -NUMBER_LIMIT)
                schema.setdefault("maximum", NUMBER_LIMIT)
        return parameters


class PasswordScheme(OpenApiAuthenticationExtension):
    """HTTP Basic on the token endpoint (inventory/api/auth.py)."""

    target_class = "inventory.api.auth.ThrottledBasicAuthentication"
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "basic"}


def _constrain_text(schema: dict[str, Any]) -> None:
    """Free text (a string without its own pattern, enum or format) gets TEXT_PATTERN."""
    if schema.get("type") == "string" and not {"pattern", "enum", "format"} & schema.keys():
        schema["pattern"] = TEXT_PATTERN
