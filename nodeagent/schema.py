"""The snapshot contract between the node agent and the portal.

Pure data and one pure function, stdlib only: the portal imports this module to validate agent
answers (jsonschema-rs's check first, ``fastjsonschema.compile(SNAPSHOT_SCHEMA)`` for the verdict
and message of a snapshot that check does not pass). ``identity()`` is the agent side's
strongest key of a link; the portal does not use it: it keys interfaces with its own
``link_identity`` (inventory/sync/snapshot.py), which also lowercases and names the virtual
links whose MAC is borrowed from a port or parent.
Bump SCHEMA_VERSION on any incompatible change; adding an optional field is not one, which is
why every object allows properties it does not name: a newer agent's extra facts must not make
an older portal refuse the whole snapshot (required fields and their types are still enforced).
"""

from __future__ import annotations

SCHEMA_VERSION = 1

LINK_KINDS = (
    "physical",
    "loopback",
    "veth",
    "bridge",
    "bond",
    "team",
    "vlan",
    "vxlan",
    "macvlan",
    "ipvlan",
    "tun",
    "dummy",
    "wireguard",
    "geneve",
    "ipip",
    "sit",
    "gre",
    "openvswitch",
    "other",
)

# RFC 2863 operational states as the kernel names them in /sys/class/net/*/operstate.
OPERSTATES = ("unknown", "notpresent", "down", "lowerlayerdown", "testing", "dormant", "up")

_BDF = r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$"
_HEX_ID = r"^0x[0-9a-f]{4}$"


def _nullable(schema: dict) -> dict:
    """The schema or null. Written as a type list (or an enum with null), not as `anyOf`: the
    same meaning (pattern, minimum, required and properties only constrain their own type), but
    a compiled validator tries an anyOf's branches by raising and catching an exception, which
    cost the portal more than the rest of a snapshot's validation (most nullable facts are
    null)."""
    if "enum" in schema:
        return {**schema, "enum": [*schema["enum"], None]}
    return {**schema, "type": [schema["type"], "null"]}


_STR = {"type": "string"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_PCI = {"type": "string", "pattern": _BDF}
_ID = {"type": "string", "pattern": _HEX_ID}
# An SR-IOV VF's number under its PF (the N of the PF's virtfnN link).
_VF_INDEX = {"type": "integer", "minimum": 0, "maximum": 65535}

_ADDRESS = {
    "type": "object",
    "required": ["family", "address", "prefixlen", "scope"],
    "additionalProperties": True,
    "properties": {
        "family": {"enum": [4, 6]},
        "address": _STR,
        "prefixlen": {"type": "integer", "minimum": 0, "maximum": 128},
        "scope": _STR,
    },
}

_LINK_PROPERTIES = {
    "ifindex": {"type": "integer", "minimum": 1},
    "name": {"type": "string", "minLength": 1},
    "altnames": {"type": "array", "items": _STR},
    "alias": _nullable(_STR),
    "mac": _nullable(_STR),
    "permanent_mac": _nullable(_STR),
    "kind": {"enum": list(LINK_KINDS)},
    "master": _nullable(_STR),
    "master_kind": _nullable({"enum": list(LINK_KINDS)}),
    "operstate": {"enum": list(OPERSTATES)},
    "carrier": _nullable(_BOOL),
    "mtu": _nullable(_INT),
    "speed_mbps": _nullable(_INT),
    "driver": _nullable(_STR),
    "pci_address": _nullable(_PCI),
    "vendor_id": _nullable(_ID),
    "device_id": _nullable(_ID),
    "numa_node": _nullable(_INT),
    "sriov_total_vfs": _nullable(_INT),
    "sriov_num_vfs": _nullable(_INT),
    "pf_pci_address": _nullable(_PCI),
    "pf_name": _nullable(_STR),
    "vf_index": _nullable(_VF_INDEX),
    "wireless": _BOOL,
    "addresses": {"type": "array", "items": _ADDRESS},
    "default_route_v4": _BOOL,
    "default_route_v6": _BOOL,
}

_PCI_FUNCTION_PROPERTIES = {
    "pci_address": _PCI,
    "driver": _nullable(_STR),
    "vendor_id": _nullable(_ID),
    "device_id": _nullable(_ID),
    "numa_node": _nullable(_INT),
    "sriov_total_vfs": _nullable(_INT),
    "sriov_num_vfs": _nullable(_INT),
    "pf_pci_address": _nullable(_PCI),
    "pf_name": _nullable(_STR),
    "vf_index": _nullable(_VF_INDEX),
}

# Facts added after SCHEMA_VERSION 1 was first released: validated when present, not required
# (an agent that predates them still sends a valid snapshot).
_OPTIONAL_LINK_FACTS = frozenset({"vf_index"})
_OPTIONAL_FUNCTION_FACTS = frozenset({"vf_index", "pf_name"})

_CNI_BIN_DIR = {
    "type": "object",
    "required": ["path", "host_device", "host_device_version", "supported_versions"],
    "additionalProperties": True,
    "properties": {
        "path": _STR,
        "host_device": _BOOL,
        "host_device_version": _nullable(_STR),
        "supported_versions": {"type": "array", "items": _STR},
    },
}

_HOST_DEVICE = {
    "type": "object",
    "required": ["path", "version", "supported_versions"],
    "additionalProperties": True,
    "properties": {
        "path": _STR,
        "version": _nullable(_STR),
        "supported_versions": {"type": "array", "items": _STR},
    },
}

SNAPSHOT_SCHEMA: dict = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "NICPortal node agent snapshot",
    "type": "object",
    "required": [
        "schema_version",
        "node",
        "agent_version",
        "collected_at",
        "netns",
        "links",
        "pci_functions",
        "cni",
    ],
    "additionalProperties": True,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "node": {"type": "string", "minLength": 1},
        "agent_version": _STR,
        # RFC 3339, UTC, e.g. 2025-01-31T12:00:00.123456Z
        "collected_at": {
            "type": "string",
            "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$",
        },
        "netns": _nullable(_STR),
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [p for p in _LINK_PROPERTIES if p not in _OPTIONAL_LINK_FACTS],
                "additionalProperties": True,
                "properties": _LINK_PROPERTIES,
            },
        },
        "pci_functions": {
            "type": "array",
            "items": {
                "type": "object",
                "required": [
                    p for p in _PCI_FUNCTION_PROPERTIES if p not in _OPTIONAL_FUNCTION_FACTS
                ],
                "additionalProperties": True,
                "properties": _PCI_FUNCTION_PROPERTIES,
            },
        },
        "cni": {
            "type": "object",
            "required": ["bin_dirs", "host_device"],
            "additionalProperties": True,
            "properties": {
                "bin_dirs": {"type": "array", "items": _CNI_BIN_DIR},
                "host_device": _nullable(_HOST_DEVICE),
            },
        },
    },
}


def identity(link: dict) -> tuple[str, str]:
    """The key that follows a NIC across renames and namespaces.

    host-device renames links and moves them between namespaces, so the name is the weakest key;
    a PCI address survives both, a permanent MAC survives a MAC change.
    """
    if link.get("pci_address"):
        return ("pci", link["pci_address"])
    if link.get("permanent_mac"):
        return ("perm_mac", link["permanent_mac"])
    if link.get("mac"):
        return ("mac", link["mac"])
    return ("name", link["name"])
