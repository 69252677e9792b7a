"""Acceptance: no request body, query parameter or path a client can send makes the API answer 5xx.

The write endpoints are read from the OpenAPI schema (every operation with a JSON request body),
so a new endpoint is covered without touching this file; the agent-hint endpoint, which has its
own credential (signed with the node's key) and is not part of the user API, is added by hand.
Each endpoint gets a table of hostile bodies: too deep, too large, NUL and control characters
and lone surrogates in every string field, unknown fields, integers that overflow 64 bits, NaN,
and odd but valid Unicode.
"""

from __future__ import annotations

import json

import pytest
from drf_spectacular.generators import SchemaGenerator

from inventory.models import Reservation
from nodeagent import auth
from tests.api.builders import in_days, make_free_interface, make_node, make_people, token_for

pytestmark = pytest.mark.django_db

HINT_PATH = "/api/v1/agent-hints/"
AGENT_MASTER_KEY = "hostile-bodies-master-key-0123456789"
CLUSTER = "hostile-bodies"


def _schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def write_operations() -> list[tuple[str, str, dict]]:
    """(method, path, properties of the JSON body) of every operation that takes a JSON body."""
    schema = _schema()
    found = []
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if body is None:
                continue
            properties = _resolve(schema, body["schema"]).get("properties", {})
            found.append((method.upper(), path, properties))
    return sorted(found, key=lambda entry: (entry[1], entry[0]))


WRITE_OPERATIONS = write_operations()


def test_the_schema_lists_the_write_endpoints_this_table_covers():
    paths = {(method, path) for method, path, _ in WRITE_OPERATIONS}
    # A floor, not the list: new endpoints join the table by themselves.
    assert {
        ("POST", "/api/v1/reservations/"),
        ("POST", "/api/v1/reservations/{id}/extend/"),
        ("POST", "/api/v1/nads/render/"),
        ("POST", "/api/v1/nads/validate/"),
        ("POST", "/api/v1/nads/apply/"),
    } <= paths


def _string_fields(properties: dict) -> list[str]:
    return [name for name, spec in properties.items() if spec.get("type") == "string"]


def _integer_fields(properties: dict) -> list[str]:
    return [
        name
        for name, spec in properties.items()
        if spec.get("type") == "integer"
        or (spec.get("type") == "array" and spec.get("items", {}).get("type") == "integer")
    ]


def _value_for(name: str, spec: dict, interface_id: int) -> object:
    """A plausible value, so that the hostile part is the only thing wrong with a body."""
    if name in ("interface",):
        return interface_id
    if name == "interfaces":
        return [interface_id]
    if spec.get("format") == "date-time":
        return in_days(3).isoformat()
    if name in ("namespace",):
        return "default"
    if name in ("name",):
        return "fast-net"
    if spec.get("type") == "string":
        return "x"
    if spec.get("type") == "integer":
        return 1
    if spec.get("type") == "array":
        return []
    if spec.get("type") == "object":
        return {}
    return "x"


def _base_body(properties: dict, interface_id: int) -> dict:
    return {
        name: _value_for(name, spec, interface_id)
        for name, spec in properties.items()
        if not spec.get("readOnly") and name not in ("team", "ipam", "other_pod_interfaces")
    }


DEEP_LIST = "[" * 10_000 + "]" * 10_000
DEEP_OBJECT = '{"a":' * 2_000 + "1" + "}" * 2_000


def hostile_bodies(properties: dict, interface_id: int) -> list[tuple[str, str | bytes, str]]:
    """(label, raw body, what the 400 must mention; "" = any status below 500)."""
    base = _base_body(properties, interface_id)
    cases: list[tuple[str, str | bytes, str]] = [
        ("deep list", DEEP_LIST, "32 levels"),
        ("deep object", DEEP_OBJECT, "32 levels"),
        ("deep in a field", json.dumps({**base, "x": 1})[:-1] + ', "y": ' + DEEP_LIST + "}", ""),
        ("too large", json.dumps({**base, "pad": "x" * 300_000}), "262144 bytes"),
        ("not JSON", "{", "Not valid JSON"),
        ("invalid UTF-8", b'{"a": "\xff\xfe"}', "Not valid JSON"),
        ("NaN", '{"x": NaN}', "NaN"),
        ("Infinity", '{"x": Infinity}', "Infinity"),
        ("huge exponent", '{"x": 1e400}', "out of range"),
        ("5000-digit integer", '{"x": ' + "9" * 5000 + "}", "Not valid JSON"),
        ("a list", "[]", ""),
        ("a string", '"x"', ""),
        ("null", "null", ""),
        ("empty", "", ""),
        ("unknown fields", json.dumps({**base, "cniVersion": "1.1.0", "podInterface": "eth0"}), ""),
        ("NUL in a key", '{"a\\u0000": 1}', "NUL"),
        ("surrogate in a key", '{"\\udc80": 1}', "surrogate"),
    ]
    for name in _string_fields(properties):
        for label, text, expect in (
            ("NUL", "a\\u0000b", "NUL"),
            ("control", "a\\u0007b", "U+0007"),
            ("DEL", "a\\u007fb", "U+007F"),
            ("lone surrogate", "\\ud800", "surrogate"),
        ):
            body = json.dumps({**base, name: "PLACEHOLDER"}).replace("PLACEHOLDER", text)
            cases.append((f"{label} in {name}", body, expect))
        for label, text in (
            ("right-to-left override", "abc\u202edef"),
            ("zero-width joiner", "a\u200db"),
            ("emoji", "\U0001f4a5"),
            ("combining marks", "e" + "\u0301" * 500),
            ("BOM", "\ufeffname"),
            ("4 KiB of text", "é" * 4096),
        ):
            cases.append((f"{label} in {name}", json.dumps({**base, name: text}), ""))
    for name in _integer_fields(properties):
        for label, number in (
            ("2**63", 2**63),
            ("2**64", 2**64),
            ("-2**63-1", -(2**63) - 1),
            ("10**400", 10**400),
            ("float", 1.5),
            ("bool", True),
        ):
            value: object = [number] if name == "interfaces" else number
            cases.append((f"{label} in {name}", json.dumps({**base, name: value}), ""))
    return cases


@pytest.fixture
def world(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")  # publishing annotations just logs
    settings.AGENT_MASTER_KEY = AGENT_MASTER_KEY
    settings.AGENT_MASTER_KEY_PREVIOUS = ""
    settings.CLUSTER_NAME = CLUSTER
    people = make_people()
    node = make_node("node-a")
    nic = make_free_interface(node, "ens1f0")
    other = make_free_interface(node, "ens2f0")
    reservation = Reservation.objects.create(
        interface=other,
        team=people.team,
        created_by=people.owner,
        purpose="held",
        expires_at=in_days(2),
    )
    return {
        "token": token_for(people.owner),
        "staff_token": token_for(people.staff),
        "interface": nic.pk,
        "reservation": reservation.pk,
    }


def _send(client, method: str, path: str, body: str | bytes, token: str, scheme: str = "Token"):
    return client.generic(
        method,
        path,
        body.encode() if isinstance(body, str) else body,
        content_type="application/json",
        HTTP_AUTHORIZATION=f"{scheme} {token}",
    )


def _send_hint(client, body: str | bytes, node: str = "node-a"):
    """POST a hint signed as node-a's agent signs it, over exactly these bytes."""
    data = body.encode() if isinstance(body, str) else body
    key = auth.derive_node_key(AGENT_MASTER_KEY.encode(), cluster=CLUSTER, node=node)
    header, _ = auth.sign_request(
        [key], direction=auth.AGENT_TO_PORTAL, method="POST", path=HINT_PATH, node=node, body=data
    )
    return client.generic(
        "POST", HINT_PATH, data, content_type="application/json", HTTP_AUTHORIZATION=header
    )


def _check(response, label: str, expect: str) -> None:
    text = response.content.decode("utf-8", "replace")
    assert response.status_code < 500, f"{label}: {response.status_code} {text[:300]}"
    if expect:
        assert response.status_code == 400, f"{label}: {response.status_code} {text[:300]}"
        assert expect in text, f"{label}: {text[:300]}"


@pytest.mark.parametrize(
    ("method", "path", "properties"),
    WRITE_OPERATIONS,
    ids=[f"{method} {path}" for method, path, _ in WRITE_OPERATIONS],
)
def test_no_hostile_body_makes_a_write_endpoint_fail(client, world, method, path, properties):
    url = path.replace("{id}", str(world["reservation"]))
    # Every body as a team member and as staff: staff-only writes (team namespaces) and staff's
    # wider rights (apply anywhere) reach code a member's 403 would stop.
    for token in (world["token"], world["staff_token"]):
        for label, body, expect in hostile_bodies(properties, world["interface"]):
            _check(_send(client, method, url, body, token), label, expect)


def test_no_hostile_body_makes_the_agent_hint_endpoint_fail(client, world):
    properties = {"node": {"type": "string"}, "reason": {"type": "string"}}
    for label, body, expect in hostile_bodies(properties, world["interface"]):
        size = len(body.encode() if isinstance(body, str) else body)
        if size > 4096:
            expect = "limit of 4096 bytes"  # refused for its size before anything else
        _check(_send_hint(client, body), label, expect)


def test_a_hint_nested_past_its_depth_limit_is_refused_naming_it(client, world):
    body = '{"node": "node-a", "reason": ' + "[" * 200 + "]" * 200 + "}"
    response = _send_hint(client, body)
    assert response.status_code == 400
    assert response.json() == {
        "detail": "The JSON document is nested deeper than the limit of 4 levels."
    }


def test_render_refuses_cni_spellings_of_its_fields_naming_what_to_write(client, world):
    body = {
        "namespace": "default",
        "name": "fast-net",
        "interfaces": [world["interface"]],
        "cniVersion": "1.1.0",
        "podInterface": "eth0",
    }
    response = _send(client, "POST", "/api/v1/nads/render/", json.dumps(body), world["token"])
    assert response.status_code == 400
    errors = response.json()
    assert set(errors) == {"cniVersion", "podInterface"}
    assert "Did you mean 'cni_version'?" in errors["cniVersion"][0]
    assert "Did you mean 'pod_interface'?" in errors["podInterface"][0]


def test_a_nul_in_a_body_field_is_a_400_naming_the_field(client, world):
    body = json.dumps(
        {"interface": world["interface"], "purpose": "a\u0000b", "expires_at": "2099-01-01T00:00Z"}
    )
    response = _send(client, "POST", "/api/v1/reservations/", body, world["token"])
    assert response.status_code == 400
    assert response.json() == {"purpose": ["NUL characters are not allowed."]}


def test_the_size_and_depth_errors_name_their_limits(client, world):
    deep = _send(client, "POST", "/api/v1/nads/render/", DEEP_LIST, world["token"])
    assert deep.status_code == 400
    assert deep.json() == {
        "detail": "The JSON document is nested deeper than the limit of 32 levels."
    }
    large = _send(client, "POST", "/api/v1/nads/render/", '"' + "x" * 300_000 + '"', world["token"])
    assert large.status_code == 400
    assert large.json() == {"detail": "The JSON document is larger than the limit of 262144 bytes."}


# --- query parameters and paths ---------------------------------------------------------------


def read_operations() -> list[tuple[str, list[str]]]:
    schema = _schema()
    found = []
    for path, item in schema["paths"].items():
        operation = item.get("get")
        if operation is None:
            continue
        names = [p["name"] for p in operation.get("parameters", []) if p["in"] == "query"]
        found.append((path, names or ["q"]))
    return sorted(found)


READ_OPERATIONS = read_operations()


@pytest.mark.parametrize(("path", "names"), READ_OPERATIONS, ids=[p for p, _ in READ_OPERATIONS])
def test_a_nul_or_control_character_in_a_query_parameter_is_a_400_naming_it(
    client, world, path, names
):
    url = (
        path.replace("{id}", str(world["reservation"]))
        .replace("{namespace}", "default")
        .replace("{name}", "pod")
    )
    for name in names:
        for value in ("a\x00b", "\x1b[31m"):
            response = client.get(url, {name: value}, HTTP_AUTHORIZATION=f"Token {world['token']}")
            assert response.status_code == 400, (name, response.content[:300])
            assert name in response.json(), response.json()


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/nodes/a%00b/",
        "/api/v1/interfaces/%00/",
        "/api/v1/pods/default/a%00b/diagnosis/",
        "/api/v1/interfaces/99999999999999999999999/",
        "/api/v1/reservations/-99999999999999999999/",
        "/api/v1/interfaces/?limit=99999999999999999999999",
        "/api/v1/interfaces/?offset=99999999999999999999999",
        "/api/v1/interfaces/?speed_min=99999999999999999999999",
    ],
)
def test_hostile_paths_and_numbers_are_4xx(client, world, path):
    response = client.get(path, HTTP_AUTHORIZATION=f"Token {world['token']}")
    assert 400 <= response.status_code < 500, (response.status_code, response.content[:300])


def test_a_nul_in_the_release_reason_is_a_400(client, world):
    response = client.delete(
        f"/api/v1/reservations/{world['reservation']}/?reason=a%00b",
        HTTP_AUTHORIZATION=f"Token {world['token']}",
    )
    assert response.status_code == 400
    assert response.json() == {"reason": ["NUL characters are not allowed."]}
    assert Reservation.objects.get(pk=world["reservation"]).released_at is None
