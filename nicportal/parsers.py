"""The API's JSON parser: DRF's, with the limits of inventory.rules.bounded_json.

DRF's JSONParser reads the whole body whatever its size, lets RecursionError through (a body
nested a few thousand levels deep was a 500) and hands NUL characters and lone surrogates on to
the database (another 500). This one reads at most API_MAX_JSON_BYTES + 1 bytes and answers 400
naming the limit, or the field and the rule.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser

from inventory.rules import bounded_json


class BoundedJSONParser(JSONParser):
    def parse(
        self, stream: Any, media_type: str | None = None, parser_context: dict | None = None
    ) -> Any:
        max_bytes = settings.API_MAX_JSON_BYTES
        data = stream.read(max_bytes + 1) if stream is not None else b""
        try:
            return bounded_json.loads(
                data, max_bytes=max_bytes, max_depth=settings.API_MAX_JSON_DEPTH
            )
        except bounded_json.JsonRefused as refused:
            if refused.field:
                raise ParseError({refused.field: [refused.message]}) from None
            raise ParseError(refused.message) from None
