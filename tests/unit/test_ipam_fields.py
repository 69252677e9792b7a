"""rules/nad/ipam_fields.py: an ipam object as people write it (NICPortal's names or CNI's own
shapes) into an IpamRequest, or errors that name the field."""

from __future__ import annotations

import pytest

from inventory.rules.nad import IpamRequest
from inventory.rules.nad.ipam_fields import parse_ipam_fields
from inventory.rules.nad.names import dns1123_subdomain_problem


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({}, IpamRequest()),
        ({"type": "static", "addresses": "10.1.0.5/24, 10.1.0.6/24"},
         IpamRequest(type="static", addresses=("10.1.0.5/24", "10.1.0.6/24"))),
        ({"type": "static", "addresses": ["10.1.0.5/24"]},
         IpamRequest(type="static", addresses=("10.1.0.5/24",))),
        ({"type": "static", "addresses": [{"address": "192.0.2.10/24"}]},
         IpamRequest(type="static", addresses=("192.0.2.10/24",))),
        ({"type": "static", "addresses": [{"address": "192.0.2.10/24", "gateway": "192.0.2.1"}]},
         IpamRequest(type="static", addresses=("192.0.2.10/24",), gateway="192.0.2.1")),
        ({"type": "static", "addresses": [{"address": "192.0.2.10/24", "gateway": "192.0.2.1"}],
          "gateway": "192.0.2.1"},
         IpamRequest(type="static", addresses=("192.0.2.10/24",), gateway="192.0.2.1")),
        ({"type": "static", "addresses": ["192.0.2.10/24"],
          "routes": [{"dst": "10.2.0.0/16", "gw": "192.0.2.1"}, "10.3.0.0/16"]},
         IpamRequest(type="static", addresses=("192.0.2.10/24",),
                     routes=("10.2.0.0/16 via 192.0.2.1", "10.3.0.0/16"))),
        ({"type": "host-local", "ranges": [[{"subnet": "192.0.2.0/24", "rangeStart": "192.0.2.9",
                                             "rangeEnd": "192.0.2.99", "gateway": "192.0.2.1"}]]},
         IpamRequest(type="host-local", subnet="192.0.2.0/24", range_start="192.0.2.9",
                     range_end="192.0.2.99", gateway="192.0.2.1")),
        ({"type": "host-local", "subnet": "192.0.2.0/24", "rangeStart": "192.0.2.9"},
         IpamRequest(type="host-local", subnet="192.0.2.0/24", range_start="192.0.2.9")),
        ({"type": "whereabouts", "range": "192.0.2.0/24", "exclude": ["192.0.2.0/28"]},
         IpamRequest(type="whereabouts", range="192.0.2.0/24", exclude=("192.0.2.0/28",))),
    ],
)  # fmt: skip
def test_it_reads_both_spellings(fields, expected):
    assert parse_ipam_fields(fields) == (expected, {})


@pytest.mark.parametrize(
    ("fields", "field", "fragment"),
    [
        ({"addresses": [{"address": "1.2.3.4/24", "via": "x"}]}, "ipam.addresses[0]",
         "Unknown key(s) via"),
        ({"addresses": [{"gateway": "1.2.3.4"}]}, "ipam.addresses[0]", 'needs "address"'),
        ({"addresses": [{"address": 5}]}, "ipam.addresses[0].address",
         "Expected a CIDR, got a number."),
        ({"addresses": [None]}, "ipam.addresses[0]", "got null"),
        ({"addresses": 7}, "ipam.addresses", "got a number"),
        ({"routes": [{"gw": "1.2.3.4"}]}, "ipam.routes[0]", 'needs "dst"'),
        ({"routes": [{"dst": "10.0.0.0/8", "gw": ["1.2.3.4"]}]}, "ipam.routes[0].gw",
         "got a list"),
        ({"ranges": [{"subnet": "1.2.3.0/24"}]}, "ipam.ranges", "host-local form [["),
        ({"ranges": [[{"subnet": "a"}], [{"subnet": "b"}]]}, "ipam.ranges", "2 ranges given"),
        ({"subnet": "1.2.3.0/24", "ranges": [[{"subnet": "1.2.3.0/24"}]]}, "ipam.subnet",
         "Given twice"),
        ({"range_start": "1.2.3.4", "rangeStart": "1.2.3.5"}, "ipam.range_start",
         "Given twice (as rangeStart too)"),
        ({"gateway": "1.2.3.1", "addresses": [{"address": "1.2.3.4/24", "gateway": "1.2.3.2"}]},
         "ipam.gateway", "Several gateways given (1.2.3.1, 1.2.3.2)"),
        ({"type": {"static": True}}, "ipam.type", "Expected a string, got an object."),
        ({"exclude": [1]}, "ipam.exclude[0]", "Expected a CIDR, got a number."),
        ({"typo": 1}, "ipam", "Unknown IPAM field(s): typo. Known: addresses, exclude"),
    ],
)  # fmt: skip
def test_what_cannot_be_read_is_an_error_on_its_field(fields, field, fragment):
    request, errors = parse_ipam_fields({"type": "static", **fields})
    assert request == IpamRequest()
    assert any(fragment in text for text in errors[field]), errors
    assert all("{'" not in text and "[" != text[:1] for texts in errors.values() for text in texts)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("uplink", None),
        ("uplink.a-1", None),
        ("", "it is empty"),
        ("Uplink", "it has upper-case letters"),
        ("a" * 254, "it is 254 characters long (at most 253)"),
        ("a..b", "it may only hold lower-case letters, digits, '-' and '.', and each part"),
        ("-a", "it may only hold"),
    ],
)
def test_subdomain_problems_are_said_in_words(value, problem):
    found = dns1123_subdomain_problem(value)
    assert found == problem if problem is None else found.startswith(problem)
