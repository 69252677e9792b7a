"""Pure NAD rules for Multus + host-device: build NADs that work, lint NADs that exist.

No I/O, no ORM, no Kubernetes calls: facts come in as dataclasses, findings and rendered
manifests go out. The rules are docs/HOST_DEVICE.md's.

    from inventory import nad
    result = nad.build(nad.NadRequest(namespace="lab", name="uplink", devices=(...,)))
"""

from inventory.nad.build import SELECTORS, build
from inventory.nad.facts import (
    ERROR,
    INFO,
    WARNING,
    BuildResult,
    DeviceFacts,
    Finding,
    IpamRequest,
    NadRequest,
    PluginFacts,
    RenderedNad,
)
from inventory.nad.lint import lint, lint_failed, parse_config_json
from inventory.nad.manifest import lint_manifest, parse_manifest
from inventory.nad.versions import (
    CNI_VERSIONS,
    highest_cni_version,
    multus_ceiling,
    plugin_has_eexist_bug,
    plugin_supported_versions,
)

__all__ = [
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
