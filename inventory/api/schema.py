"""The API's OpenAPI generation: drf-spectacular's AutoSchema plus what every operation can
answer (400 for bad input, 401, 403, 404 on paths with an id) and the bounds the API enforces on
query parameters, so that the schema is a true contract (schemathesis checks it)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

from inventory.api.query import NUMBER_LIMIT

ERROR_BODY = {
    "type": "object",
    "description": "`detail` for 401/403/404; for 400 one key per bad field with its messages.",
    "additionalProperties": True,
}
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

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        # With `?fields=`/`?brief=` any field may be absent from a response.
        if direction == "response" and getattr(serializer, "selectable_fields", False):
            schema.pop("required", None)
        return schema

    def _get_filter_parameters(self) -> list[dict[str, Any]]:
        parameters = super()._get_filter_parameters()
        for parameter in parameters:
            schema = parameter.get("schema", {})
            if schema.get("type") in ("number", "integer"):
                schema.setdefault("minimum", -NUMBER_LIMIT)
                schema.setdefault("maximum", NUMBER_LIMIT)
        return parameters
