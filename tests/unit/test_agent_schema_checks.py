"""A snapshot is checked first by jsonschema-rs, and only one it does not pass goes through
fastjsonschema, whose verdict and message count (inventory/clients/agents.py). So the Rust check
must never pass a snapshot fastjsonschema refuses: compared here on snapshots with one value
changed, removed or added at a time, and on the cases where the two read the schema
differently."""

from __future__ import annotations

import copy

import fastjsonschema
from hypothesis import given, settings
from hypothesis import strategies as st

from bench.fleet import render_snapshot
from inventory.clients.agents import _passes, _snapshot_validator

_VALID = render_snapshot(1, 16, 0)
_VALID["pci_functions"] = [
    {
        "pci_address": "0000:18:01.0",
        "driver": "iavf",
        "vendor_id": "0x8086",
        "device_id": "0x1889",
        "numa_node": 0,
        "sriov_total_vfs": None,
        "sriov_num_vfs": None,
        "pf_pci_address": "0000:18:00.0",
        "pf_name": "ens1f0",
        "vf_index": 0,
    }
]
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            "",
            "x",
            "up",
            "physical",
            "0x8086",
            "0X8086",
            "0000:18:00.0",
            "0000:18:00.0\n",
            "0000:18:00.8",
            "2026-12-02T06:00:00Z",
            "2026-12-02T06:00:00.5Z\n",
            "\u0662\u0660\u0662\u0666-12-02T06:00:00Z",
            "\u00e9",
        ]
    ),
    st.just([]),
    st.just({}),
    st.just(["a", 1]),
    st.just([{"family": 4, "address": "10.0.0.1", "prefixlen": 24, "scope": "global"}]),
    st.just([{"family": 5, "address": "10.0.0.1", "prefixlen": 24, "scope": "global"}]),
)
_DELETE = object()


def _places(document):
    """(container, key) of every value in the document, the document's own keys included."""
    stack = [document]
    while stack:
        value = stack.pop()
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            yield value, key
            if isinstance(item, dict | list):
                stack.append(item)


_PLACES = len(list(_places(_VALID)))


def _fastjsonschema_passes(document) -> bool:
    try:
        _snapshot_validator()[1](document)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def test_the_agents_own_snapshot_passes_the_rust_check():
    # Otherwise every snapshot would pay both validators.
    assert _passes(copy.deepcopy(_VALID))


@settings(max_examples=600, deadline=None)
@given(
    changes=st.lists(
        st.tuples(st.integers(0, _PLACES - 1), st.one_of(_VALUES, st.just(_DELETE))),
        min_size=1,
        max_size=3,
    )
)
def test_the_rust_check_never_passes_what_fastjsonschema_refuses(changes):
    document = copy.deepcopy(_VALID)
    for index, value in changes:
        places = list(_places(document))
        container, key = places[index % len(places)]
        if value is _DELETE:
            del container[key]
        else:
            container[key] = value
    assert _fastjsonschema_passes(document) or not _passes(document), document


def test_where_the_two_differ_the_snapshot_gets_fastjsonschemas_verdict():
    # Python's `\d` matches any Unicode digit, the Rust check's ASCII digits only.
    document = copy.deepcopy(_VALID)
    document["collected_at"] = "\u0662\u0660\u0662\u0666-12-02T06:00:00Z"

    assert not _passes(document)
    assert _fastjsonschema_passes(document)
