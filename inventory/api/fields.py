"""The API's field machinery: strict scalar fields (no silent coercion, no control characters),
`?fields=` selection, and StrictSerializer, which refuses fields it does not know (400 naming each
and the field the caller probably meant)."""

from __future__ import annotations

import difflib
import functools
import json
import operator
import re
from collections.abc import Callable, Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers
from rest_framework.relations import PKOnlyObject

from inventory.rules.nad import names as nad_names

TRUE_VALUES = {"true"}
FALSE_VALUES = {"false"}


class SelectableFieldsMixin:
    """`?fields=a,b` keeps only the named fields, `?brief=1` keeps `brief_fields`: listing 80k
    interfaces with every fact is megabytes nobody reads. Applies to GET requests only."""

    selectable_fields = True
    brief_fields: tuple[str, ...] = ("id",)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None or request.method != "GET":
            return fields
        wanted = selected_fields(request.query_params, list(fields), self.brief_fields)
        if wanted is None:
            return fields
        return {name: field for name, field in fields.items() if name in wanted}


@functools.cache
def field_names(serializer_class: type[serializers.Serializer]) -> tuple[str, ...]:
    """Every field name of a serializer class, in order (its fields are fixed per class; building
    them is a ModelSerializer's introspection of the model, not worth repeating per request)."""
    return tuple(serializer_class().fields)


class DirectReadMixin:
    """A read serializer's rows without DRF's per-field lookup machinery: for each field whose
    source is one plain attribute (not a method, not a relation), the value is read with one
    `attrgetter`, and each date-time field resolves the request's time zone once, not per value.
    Same output as DRF's `Serializer.to_representation`: None stays None, every other value goes
    through the field's own `to_representation`; any other field, and any attribute that is
    missing, goes through the field's `get_attribute` as DRF does. A page of 100 interfaces is
    4,700 values: this halves the time to build them."""

    def to_representation(self, instance: Any) -> dict[str, Any]:
        plan = self.__dict__.get("_direct_plan")
        if plan is None:
            plan = self.__dict__["_direct_plan"] = self._plan_reads()
        ret: dict[str, Any] = {}
        for name, get, field in plan:
            if get is None:
                try:
                    value = field.get_attribute(instance)
                except serializers.SkipField:
                    continue
            else:
                try:
                    value = get(instance)
                except (AttributeError, KeyError):
                    try:
                        value = field.get_attribute(instance)
                    except serializers.SkipField:
                        continue
            if value is None or (isinstance(value, PKOnlyObject) and value.pk is None):
                ret[name] = None
            else:
                ret[name] = field.to_representation(value)
        return ret

    def _plan_reads(self) -> list[tuple[str, Callable[[Any], Any] | None, serializers.Field]]:
        model = getattr(getattr(self, "Meta", None), "model", None)
        plan = []
        for field in self._readable_fields:
            attrs = field.source_attrs
            direct = (
                type(field).get_attribute is serializers.Field.get_attribute
                and len(attrs) == 1
                and not callable(getattr(model, attrs[0], None))
            )
            if isinstance(field, serializers.DateTimeField) and not hasattr(field, "timezone"):
                field.timezone = field.default_timezone()
            plan.append(
                (field.field_name, operator.attrgetter(attrs[0]) if direct else None, field)
            )
        return plan


def selected_fields(
    params: Any, available: list[str], brief_fields: tuple[str, ...]
) -> list[str] | None:
    """The field names a request asks for, None for all. Raises a 400 naming unknown fields."""
    raw_fields = params.get("fields")
    raw_brief = params.get("brief")
    brief = False
    if raw_brief is not None:
        if raw_brief.lower() not in TRUE_VALUES | FALSE_VALUES:
            raise serializers.ValidationError({"brief": ["Use true or false."]})
        brief = raw_brief.lower() in TRUE_VALUES
    if raw_fields is not None:
        names = [name.strip() for name in raw_fields.split(",") if name.strip()]
        unknown = sorted(set(names) - set(available))
        if unknown or not names:
            raise serializers.ValidationError(
                {
                    "fields": [
                        f"Unknown field(s) {', '.join(unknown)}; known: {', '.join(available)}."
                    ]
                }
            )
        return names
    if brief:
        return list(brief_fields)
    return None


def fields_pattern(names: list[str]) -> str:
    """The regular expression of a comma-separated list of these field names (for the schema)."""
    choice = "|".join(re.escape(name) for name in names)
    return f"^({choice})(,({choice}))*$"


class StrictStringMixin:
    """JSON strings only: DRF would turn `0` into "0", which the schema says is a bad request."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(StrictStringMixin, serializers.CharField):
    pass


class StrictRegexField(StrictStringMixin, serializers.RegexField):
    default_error_messages = {"invalid": "Not a valid string of the expected form."}


class RuleField(StrictRegexField):
    """A string held to a named rule (a DNS-1123 label, an interface name…): a 400 says which
    rule, what it is, and what is wrong with this value. The regex stays for the schema."""

    def __init__(
        self, regex: str, *, what: str, rule: str, problem: Callable[[str], str | None], **kwargs
    ) -> None:
        self.what, self.rule, self.problem = what, rule, problem
        kwargs.setdefault("error_messages", {})
        kwargs["error_messages"].setdefault("blank", f"Empty: {rule}.")
        super().__init__(regex, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        why = self.problem(value)
        if why:
            raise serializers.ValidationError(f"Not {self.what}: {why}; {self.rule}.")
        return value


IFNAME_RULE = "a pod interface name is 1 to 15 letters, digits, '_', '.' or '-', e.g. \"net1\""


def pod_ifname_problem(value: str) -> str | None:
    """Why `value` is not a pod interface name as the API takes it (ASCII letters, digits, '_',
    '.', '-'; at most 15), None when it is one."""
    if len(value) > nad_names.IFNAME_MAX:
        return f"it is {len(value)} characters long (at most {nad_names.IFNAME_MAX})"
    bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "_.-"))})
    if bad:
        return "it contains " + ", ".join(json.dumps(c) for c in bad[:5])
    return None if value else "it is empty"


NODE_INTERFACE = r"^[^/\s\x00-\x1f\x7f]{1,253}/[^/\s\x00-\x1f\x7f]{1,64}$"
_NODE_INTERFACE = re.compile(NODE_INTERFACE)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            {"type": "string", "pattern": NODE_INTERFACE, "maxLength": 318},
        ]
    }
)
class InterfaceRefField(serializers.Field):
    """An interface: its id, or "node/name" as the pages show it ("n1/eth3")."""

    _SHAPES = (
        'Expected an interface id (an integer of at least 1) or "node/name" such as "n1/eth3".'
    )
    default_error_messages = {"invalid": _SHAPES, "null": _SHAPES}

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, int) and not isinstance(data, bool) and 1 <= data <= 2**63 - 1:
            return data
        if isinstance(data, str) and _NODE_INTERFACE.match(data):
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class StrictIntegerField(serializers.IntegerField):
    """JSON integers only: DRF would accept "1" and 1.0 as well."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def unknown_field_message(name: str, known: list[str]) -> str:
    """Names the field the caller probably meant: `cniVersion` is CNI's spelling of this API's
    `cni_version`, and a silently dropped field would give them a NAD they did not ask for."""
    guess = _snake_case(name) if _snake_case(name) in known else ""
    if not guess:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        guess = close[0] if close else ""
    hint = f" Did you mean {guess!r}?" if guess else ""
    return f"Unknown field.{hint} Known fields: {', '.join(known)}."


# A write serializer that refuses fields it does not know (400 naming each), instead of DRF's
# default of ignoring them; its schema says `additionalProperties: false` (api/schema.py). A
# comment, not a docstring: drf-spectacular would show it as every subclass's description.
class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = [name for name, field in self.fields.items() if not field.read_only]
            unknown = sorted(str(name) for name in data if name not in known)
            if unknown:
                raise serializers.ValidationError(
                    {name: [unknown_field_message(name, known)] for name in unknown}
                )
        return super().to_internal_value(data)
