"""What a NAD's config could select, as values the inventory's columns hold: so that linting the
cluster's NADs reads the interfaces they may pick (a few per node) instead of every interface of
the fleet. Pure.

Generous on purpose: every "device", "hwaddr" and "pciBusID" string of the config and of its
plugin list counts, whichever the linter then decides host-device uses. Reading a few
interfaces too many changes nothing (the linter matches its own selector's value); reading one
too few would. A "kernelpath" selector has no column (NICPortal does not record sysfs paths,
the linter matches it on the device's facts): None, read everything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from inventory.rules.nad.lint import parse_config_json
from inventory.rules.nad.names import normalize_mac


@dataclass(frozen=True, slots=True)
class DeviceValues:
    names: frozenset[str] = frozenset()
    macs: frozenset[str] = frozenset()  # lower case, colon-separated (as the inventory stores)
    pcis: frozenset[str] = frozenset()  # lower case

    def __or__(self, other: DeviceValues) -> DeviceValues:
        return DeviceValues(
            self.names | other.names, self.macs | other.macs, self.pcis | other.pcis
        )

    def __bool__(self) -> bool:
        return bool(self.names or self.macs or self.pcis)


def device_values(config: Any) -> DeviceValues | None:
    """The interface names, MACs and PCI addresses `config` (a NAD's spec.config, as stored)
    could select; None when it may select by kernelpath. A config that does not parse selects
    nothing."""
    parsed, _ = parse_config_json(config) if isinstance(config, str) else (config, [])
    if not isinstance(parsed, dict):
        return DeviceValues()
    plugins = parsed.get("plugins")
    entries = (
        [parsed] + [p for p in plugins if isinstance(p, dict)]
        if isinstance(plugins, list)
        else [parsed]
    )
    names: set[str] = set()
    macs: set[str] = set()
    pcis: set[str] = set()
    for entry in entries:
        if entry.get("kernelpath") not in (None, ""):
            return None
        for key, found in (("device", names), ("hwaddr", macs), ("pciBusID", pcis)):
            value = entry.get(key)
            if not isinstance(value, str) or not value:
                continue
            if key == "device":
                found.add(value)
            elif key == "hwaddr":
                found.update({value.lower(), normalize_mac(value) or value.lower()})
            else:
                found.add(value.lower())
    return DeviceValues(frozenset(names), frozenset(macs), frozenset(pcis))
