"""An IPAM request as people write it, into an IpamRequest: NICPortal's own field names and
plain strings, or CNI's own shapes where they say one thing only (copied from an existing
config):

- `addresses`: "192.0.2.10/24", a comma- or newline-separated text of those, or CNI's static
  list `[{"address": "192.0.2.10/24", "gateway": "192.0.2.1"}]`;
- `routes`: "10.2.0.0/16 via 192.0.2.1", or CNI's `[{"dst": "10.2.0.0/16", "gw": "192.0.2.1"}]`;
- host-local's `ranges: [[{"subnet", "rangeStart", "rangeEnd", "gateway"}]]` (one range: the
  builder makes one), `rangeStart`/`rangeEnd` beside `range_start`/`range_end`.

What cannot be read is said per field ("ipam.addresses[0]: ..."), never as a Python value. The
values themselves (is it a CIDR, is the gateway inside it) are `ipam.validate_ipam`'s.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from typing import Any

from inventory.rules.nad.facts import IpamRequest

FIELDS = tuple(f.name for f in dataclass_fields(IpamRequest))
LIST_FIELDS = frozenset({"addresses", "routes", "exclude"})
ALIASES = {"rangeStart": "range_start", "rangeEnd": "range_end"}
ADDRESS_KEYS = frozenset({"address", "gateway"})
ROUTE_KEYS = frozenset({"dst", "gw"})
RANGE_KEYS = {"subnet": "subnet", "rangeStart": "range_start", "rangeEnd": "range_end"}

Errors = dict[str, list[str]]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list | tuple):
        return "a list"
    return "null" if value is None else "a value of another type"


def _text(value: Any, field: str, errors: Errors, *, expected: str, item: bool = False) -> str:
    """A string value; None is "not given" for a field, an error for a list item."""
    if value is None and not item:
        return ""
    if isinstance(value, str):
        return value.strip()
    errors.setdefault(field, []).append(f"Expected {expected}, got {_json_type(value)}.")
    return ""


def _items(value: Any, field: str, errors: Errors, *, expected: str) -> list[Any]:
    if isinstance(value, str):
        return [i.strip() for i in value.replace(",", "\n").splitlines() if i.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    errors.setdefault(field, []).append(
        f"Expected a list of {expected} (or one text, comma-separated), got {_json_type(value)}."
    )
    return []


def _unknown_keys(item: Mapping, known: frozenset[str] | set[str], field: str, errors: Errors):
    unknown = sorted(str(k) for k in item if k not in known)
    if unknown:
        errors.setdefault(field, []).append(
            f"Unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}."
        )


def _addresses(value: Any, errors: Errors) -> tuple[tuple[str, ...], list[str]]:
    """The addresses, and the gateways CNI's objects gave beside them."""
    expected = 'CIDR strings such as "192.0.2.10/24" or objects {"address": "192.0.2.10/24"}'
    addresses, gateways = [], []
    for index, item in enumerate(_items(value, "ipam.addresses", errors, expected=expected)):
        field = f"ipam.addresses[{index}]"
        if isinstance(item, Mapping):
            _unknown_keys(item, ADDRESS_KEYS, field, errors)
            if "address" not in item:
                errors.setdefault(field, []).append('An address object needs "address".')
                continue
            addresses.append(_text(item["address"], f"{field}.address", errors, expected="a CIDR"))
            gateway = _text(item.get("gateway"), f"{field}.gateway", errors, expected="an IP")
            if gateway:
                gateways.append(gateway)
        else:
            addresses.append(_text(item, field, errors, expected=expected, item=True))
    return tuple(a for a in addresses if a), gateways


def _routes(value: Any, errors: Errors) -> tuple[str, ...]:
    expected = 'routes such as "10.2.0.0/16 via 192.0.2.1" or objects {"dst": ..., "gw": ...}'
    routes = []
    for index, item in enumerate(_items(value, "ipam.routes", errors, expected=expected)):
        field = f"ipam.routes[{index}]"
        if isinstance(item, Mapping):
            _unknown_keys(item, ROUTE_KEYS, field, errors)
            dst = _text(item.get("dst"), f"{field}.dst", errors, expected="a CIDR")
            gw = _text(item.get("gw"), f"{field}.gw", errors, expected="an IP address")
            if not dst:
                errors.setdefault(field, []).append('A route object needs "dst" (a CIDR).')
                continue
            routes.append(f"{dst} via {gw}" if gw else dst)
        else:
            route = _text(item, field, errors, expected="a route text", item=True)
            if route:
                routes.append(route)
    return tuple(routes)


def _ranges(value: Any, values: dict[str, Any], errors: Errors) -> None:
    """host-local's `ranges` (a list of range sets, each a list of ranges): one range only."""
    flat = (
        [r for s in value for r in s]
        if isinstance(value, list) and all(isinstance(s, list) for s in value)
        else None
    )
    if flat is None or not all(isinstance(r, Mapping) for r in flat):
        errors.setdefault("ipam.ranges", []).append(
            'Expected CNI\'s host-local form [[{"subnet": "192.0.2.0/24", ...}]].'
        )
        return
    if len(flat) != 1:
        errors.setdefault("ipam.ranges", []).append(
            f"{len(flat)} ranges given: NICPortal builds one range per attachment (subnet, "
            "range_start, range_end, gateway)."
        )
        return
    (pool,) = flat
    _unknown_keys(pool, {*RANGE_KEYS, "gateway"}, "ipam.ranges[0][0]", errors)
    for key, name in (*RANGE_KEYS.items(), ("gateway", "gateway")):
        if key in pool:
            if values.get(name):
                errors.setdefault(f"ipam.{name}", []).append(
                    f"Given twice: as {name} and in ranges; give it once."
                )
                continue
            values[name] = pool[key]


def parse_ipam_fields(fields: Mapping[str, Any]) -> tuple[IpamRequest, Errors]:
    """An IpamRequest from the fields of an `ipam` object, and the errors per field (an empty
    request when there are errors)."""
    errors: Errors = {}
    values: dict[str, Any] = {}
    unknown = []
    for key, value in fields.items():
        if key == "ranges":
            continue
        name = ALIASES.get(key, key)
        if name not in FIELDS:
            unknown.append(str(key))
        elif name in values:
            errors.setdefault(f"ipam.{name}", []).append(f"Given twice (as {key} too).")
        else:
            values[name] = value
    if unknown:
        errors["ipam"] = [
            f"Unknown IPAM field(s): {', '.join(sorted(unknown))}. Known: "
            f"{', '.join(sorted({*FIELDS, 'ranges'}))}."
        ]
    if "ranges" in fields:
        _ranges(fields["ranges"], values, errors)

    addresses, gateways = _addresses(values.pop("addresses", []), errors)
    gateway = _text(values.pop("gateway", None), "ipam.gateway", errors, expected="an IP address")
    distinct = sorted(set(gateways) | ({gateway} if gateway else set()))
    if len(distinct) > 1:
        errors.setdefault("ipam.gateway", []).append(
            f"Several gateways given ({', '.join(distinct)}): NICPortal's IPAM takes one "
            "gateway, set on the addresses of its subnet."
        )
    routes = _routes(values.pop("routes", []), errors)
    exclude = tuple(
        _text(item, f"ipam.exclude[{index}]", errors, expected="a CIDR", item=True)
        for index, item in enumerate(
            _items(values.pop("exclude", []), "ipam.exclude", errors, expected="CIDRs")
        )
    )
    scalars = {
        name: _text(value, f"ipam.{name}", errors, expected="a string")
        for name, value in values.items()
    }
    if errors:
        return IpamRequest(), errors
    return IpamRequest(
        **{**scalars, "type": scalars.get("type") or "none"},
        addresses=addresses,
        gateway=distinct[0] if distinct else "",
        routes=routes,
        exclude=tuple(e for e in exclude if e),
    ), {}
