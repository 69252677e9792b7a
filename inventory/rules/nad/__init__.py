"""Pure NAD rules for Multus + host-device: build NADs that work, lint NADs that exist.

No I/O, no ORM, no Kubernetes calls: facts come in as dataclasses, findings and rendered
manifests go out. The rules are docs/HOST_DEVICE.md's.

    from inventory.rules import nad
    result = nad.build(nad.NadRequest(namespace="lab", name="uplink", devices=(...,)))
"""

from inventory.rules.nad.build import build
from inventory.rules.nad.checks import SELECTORS
from inventory.rules.nad.facts import (
    ERROR,
    INFO,
    PRIMARY_POD_INTERFACE,
    WARNING,
    BuildResult,
    DeviceFacts,
    Finding,
    IpamRequest,
    NadRequest,
    PluginFacts,
    RenderedNad,
)
from inventory.rules.nad.lint import lint, lint_failed, parse_config_json
from inventory.rules.nad.manifest import lint_manifest, parse_manifest
from inventory.rules.nad.versions import (
    CNI_VERSIONS,
    highest_cni_version,
    multus_ceiling,
    plugin_has_eexist_bug,
    plugin_supported_versions,
)

__all__ = [
    "PRIMARY_POD_INTERFACE",
    "CNI_VERSIONS",
    "ERROR",
    "INFO",
    "SELECTORS",
    "WARNING",
    "BuildResult",
    "DeviceFacts",
    "Finding",
    "IpamRequest",
    "NadRequest",
    "PluginFacts",
    "RenderedNad",
    "build",
    "highest_cni_version",
    "lint",
    "lint_failed",
    "lint_manifest",
    "multus_ceiling",
    "parse_config_json",
    "parse_manifest",
    "plugin_has_eexist_bug",
    "plugin_supported_versions",
]
