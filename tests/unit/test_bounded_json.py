"""inventory.rules.bounded_json: every way a JSON document from outside can break the portal is one
JsonRefused naming the limit or the rule (and the field), never RecursionError or a value the
database cannot store."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.rules import bounded_json
from inventory.rules.bounded_json import JsonRefused
from inventory.rules.nad import lint, parse_config_json, parse_manifest
from inventory.rules.nad.lint import CONFIG_MAX_DEPTH


def loads(text: str | bytes, **limits):
    return bounded_json.loads(text, **{"max_bytes": 10_000, "max_depth": 8, **limits})


def refusal(text: str | bytes, **limits) -> JsonRefused:
    with pytest.raises(JsonRefused) as raised:
        loads(text, **limits)
    return raised.value


def test_it_parses_what_is_within_the_limits():
    assert loads('{"a": [1, 2.5, "x\\ty", null, true]}') == {"a": [1, 2.5, "x\ty", None, True]}


@pytest.mark.parametrize("depth", [9, 1_000, 100_000])
def test_it_refuses_a_document_deeper_than_the_limit_naming_it(depth):
    refused = refusal("[" * depth + "]" * depth, max_bytes=10**6)
    assert refused.message == "The JSON document is nested deeper than the limit of 8 levels."


def test_depth_counts_containers_so_the_limit_itself_is_allowed():
    assert loads("[" * 8 + "]" * 8) == [[[[[[[[]]]]]]]]
    assert loads('{"a":' * 7 + "[]" + "}" * 7)


def test_it_refuses_a_document_larger_than_the_limit_before_parsing_it():
    refused = refusal('"' + "x" * 20_000 + '"')
    assert refused.message == "The JSON document is larger than the limit of 10000 bytes."


def test_size_is_counted_in_bytes_not_characters():
    assert refusal('"' + "é" * 5_000 + '"').message.endswith("10000 bytes.")


@pytest.mark.parametrize(
    ("text", "message", "field"),
    [
        ('{"purpose": "a\\u0000b"}', "NUL characters are not allowed.", "purpose"),
        ('{"a": {"b": ["ok", "\\u0007"]}}', "Control characters are not allowed (found U+0007).",
         "a.b[1]"),
        ('{"a": "\\u007f"}', "Control characters are not allowed (found U+007F).", "a"),
        ('{"a": "\\ud800"}', "Lone UTF-16 surrogates (\\ud800-\\udfff) are not allowed.", "a"),
        ('{"a": 1e400}', "The number is out of range.", "a"),
    ],
)  # fmt: skip
def test_it_refuses_text_and_numbers_the_database_cannot_hold_naming_the_field(
    text, message, field
):
    refused = refusal(text)
    assert (refused.message, refused.field) == (message, field)


def test_a_refused_key_is_named_by_its_parent():
    refused = refusal('{"outer": {"k\\u0000": 1}}')
    assert refused.field == "outer"
    assert refused.message.startswith("The key 'k\\x00' is refused: NUL")


def test_tab_and_line_breaks_are_text_not_control_characters():
    assert loads('{"a": "x\\ty\\nz\\r"}') == {"a": "x\ty\nz\r"}


def test_an_agent_may_report_control_characters_but_not_nul():
    assert loads('{"alias": "\\u0007"}', forbidden=bounded_json.UNSTORABLE)
    assert refusal('{"alias": "\\u0000"}', forbidden=bounded_json.UNSTORABLE).field == "alias"


@pytest.mark.parametrize(
    "text", ["NaN", '{"a": Infinity}', "-Infinity", "{", b'"\xff"', "9" * 5000, ""]
)
def test_what_is_not_json_is_refused_as_such(text):
    assert refusal(text).message.startswith("Not valid JSON: ")


def test_a_walk_over_shared_values_stops_at_the_value_limit():
    shared: list = ["x"] * 10
    for _ in range(9):
        shared = [shared] * 10  # a billion strings, in kilobytes, as YAML aliases make them
    with pytest.raises(JsonRefused, match="more than the limit of 1000 values"):
        bounded_json.check(shared, max_depth=20, max_values=1000)


# --- the linter on pathological configs ----------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        "[" * 3000 + "]" * 3000,
        '{"a":' * 3000 + "1" + "}" * 3000,
        "[" * (CONFIG_MAX_DEPTH + 1) + "]" * (CONFIG_MAX_DEPTH + 1),
    ],
)
def test_a_config_nested_too_deep_is_one_finding(config):
    parsed, findings = parse_config_json(config)
    assert parsed is None
    assert [f.code for f in findings] == ["CONFIG_TOO_DEEP"]
    assert [f.code for f in lint(namespace="default", name="deep", config=config)] == [
        "CONFIG_TOO_DEEP"
    ]


def test_a_config_with_a_5000_digit_number_is_invalid_json_not_a_crash():
    findings = lint(namespace="default", name="big", config='{"mtu": ' + "9" * 5000 + "}")
    assert [f.code for f in findings] == ["CONFIG_INVALID_JSON"]


BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{c}: &{c} [{', '.join(['*' + p] * 10)}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


@pytest.mark.parametrize(
    "text",
    [
        "[" * 3000 + "]" * 3000,
        "- " * 3000 + "x",
        BILLION_LAUGHS,
    ],
    ids=["json", "yaml", "yaml aliases"],
)  # fmt: skip
def test_a_pasted_manifest_too_deep_or_too_large_is_one_finding(text):
    obj, findings = parse_manifest(text)
    assert obj is None
    assert [f.code for f in findings] == ["MANIFEST_TOO_LARGE"]


# --- the fast path: the source read instead of the values walked --------------------------

_TEXT = st.text(
    alphabet=st.sampled_from(["a", "é", '"', "\\", "\x00", "\x08", "\n", "\ud800", "/", "{", "]"]),
    max_size=6,
)
_SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False), _TEXT
)
_DOCUMENTS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_TEXT, inner, max_size=4)),
    max_leaves=30,
)


# Infinity as a float would be dumped as the constant "Infinity", which loads refuses before
# either path runs; numbers too big for a double come from `big`, written in the source.
@settings(max_examples=400, deadline=None)
@given(
    document=_DOCUMENTS,
    ascii_only=st.booleans(),
    as_bytes=st.booleans(),
    forbidden=st.sampled_from([bounded_json.CONTROL, bounded_json.UNSTORABLE, None]),
    max_depth=st.integers(min_value=0, max_value=5),
    big=st.sampled_from(["", "1e999", "-1E400", "1" * 310 + ".0", "2.5e3", "12345"]),
)
def test_reading_the_source_never_passes_what_walking_the_values_refuses(
    document, ascii_only, as_bytes, forbidden, max_depth, big
):
    source = json.dumps([document, json.loads(big)] if big else document, ensure_ascii=ascii_only)
    if big:
        source = source.replace(json.dumps(json.loads(big)), big, 1)
    try:
        data: str | bytes = source.encode() if as_bytes else source
    except UnicodeEncodeError:  # a lone surrogate has no UTF-8 form
        return
    parsed = json.loads(data)
    try:
        bounded_json.check(parsed, max_depth=max_depth, forbidden=forbidden)
        walked = True
    except JsonRefused:
        walked = False
    read = bounded_json._plainly_within(data, max_depth=max_depth, forbidden=forbidden)
    assert walked or not read, source  # the fast path says "within" only when it is
    # And loads() refuses exactly what the walk refuses, whichever path it took.
    if walked:
        assert (
            bounded_json.loads(data, max_bytes=10**6, max_depth=max_depth, forbidden=forbidden)
            == parsed
        )
    else:
        with pytest.raises(JsonRefused):
            bounded_json.loads(data, max_bytes=10**6, max_depth=max_depth, forbidden=forbidden)


def test_an_agent_snapshot_takes_the_fast_path():
    from bench.fleet import render_snapshot

    # Serialized as the agent does (nodeagent/http_api.py): no escapes, UTF-8 as it stands.
    body = json.dumps(render_snapshot(1, 16, 0), separators=(",", ":"), ensure_ascii=False)
    assert bounded_json._plainly_within(
        body.encode(), max_depth=16, forbidden=bounded_json.UNSTORABLE
    )


@pytest.mark.parametrize(
    "source",
    ['{"a": "\\u0000"}', '["x\\b"]', "[1e999]", "[" * 9 + "]" * 9, '{"k\\ud800": 1}'],
)
def test_what_the_source_cannot_show_is_left_to_the_walk(source):
    assert not bounded_json._plainly_within(source, max_depth=8, forbidden=bounded_json.CONTROL)


@pytest.mark.parametrize(
    ("source", "forbidden"),
    [
        ('["a\x00b"]', bounded_json.UNSTORABLE),
        ('{"k": ["x\x01"]}', bounded_json.CONTROL),
        ('{"k\x7f": 1}', bounded_json.CONTROL),
        ('["\u00e9", "\ud800"]', bounded_json.UNSTORABLE),
        ("[1E5]", None),
        ("[0.5e-3]", None),
        ("[" + "9" * 300 + "]", None),
    ],
)
def test_raw_refused_characters_and_numbers_that_may_overflow_leave_the_fast_path(
    source, forbidden
):
    for data in (source, source.encode("utf-8", "surrogatepass")):
        assert not bounded_json._plainly_within(data, max_depth=8, forbidden=forbidden)


def test_brackets_literals_and_digits_inside_strings_do_not_count():
    source = '{"a": "[[[{{{", "b": [true, false, null, "1e999", "%s"], "c": 12.5}' % ("9" * 400)
    for data in (source, source.encode()):
        assert bounded_json._plainly_within(data, max_depth=2, forbidden=bounded_json.CONTROL)
        assert not bounded_json._plainly_within(data, max_depth=1, forbidden=None)


def test_a_str_holding_a_lone_surrogate_is_refused_not_raised():
    # A str (not bytes) can carry one, e.g. a NAD's config decoded from "\ud800" upstream.
    refused = refusal('["x\ud800"]')
    assert refused.message.startswith("Lone UTF-16 surrogates")
    assert refused.field == "[0]"
