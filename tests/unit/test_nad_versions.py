"""Plugin and Multus version facts: the highest cniVersion and the EEXIST bug."""

from __future__ import annotations

import pytest
from test_nad_fixtures import DEBIAN_PLUGIN, NEW_PLUGIN, OLD_PLUGIN, UP_TO_1_0

from inventory.rules import nad
from inventory.rules.nad import PluginFacts


@pytest.mark.parametrize(
    ("plugin", "multus", "expected"),
    [
        (PluginFacts("0.7.6", ()), "4.1", "0.3.1"),
        (PluginFacts("v0.8.0", ()), "4.1", "0.4.0"),
        (PluginFacts("0.9.1", ()), "4.1", "0.4.0"),
        (PluginFacts("1.0.0", ()), "4.1", "1.0.0"),
        (PluginFacts("1.5.1", ()), "4.1", "1.0.0"),
        (PluginFacts("1.6.0", ()), "4.1", "1.1.0"),
        (PluginFacts("v1.8.0", ()), "4.1.2", "1.1.0"),
        (NEW_PLUGIN, "4.0.0", "1.0.0"),
        (NEW_PLUGIN, "3.9", "0.3.1"),
        (NEW_PLUGIN, "", "0.3.1"),  # unknown Multus: every release takes 0.3.1
        (DEBIAN_PLUGIN, "4.1", "1.0.0"),  # what the binary says wins
        (PluginFacts("1.6.0", ("0.3.1", "0.4.0")), "4.1", "0.4.0"),
        (PluginFacts(None, ("1.0.0",)), "3.9", None),
        (PluginFacts(None, ()), "4.1", None),
        (None, "4.1", None),
    ],
)
def test_highest_cni_version(plugin, multus, expected):
    assert nad.highest_cni_version(plugin, multus) == expected


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        (OLD_PLUGIN, True),
        (PluginFacts("1.2.0", ()), True),  # MicroK8s 1.27-1.31
        (PluginFacts("1.4.9", ()), True),
        (PluginFacts("1.5.0", ()), False),
        (NEW_PLUGIN, False),
        (PluginFacts("0.9.1", ()), True),
        (DEBIAN_PLUGIN, True),  # 1.0.0-1.5.x cannot be told apart: treated as affected
        (PluginFacts(None, (*UP_TO_1_0, "1.1.0")), False),  # 1.1.0 means v1.6.0+
        (PluginFacts(None, ("0.3.1", "0.4.0")), True),
        (PluginFacts(None, ()), None),
        (PluginFacts("version unknown", ()), None),
        (None, None),
    ],
)
def test_plugin_has_eexist_bug(plugin, expected):
    assert nad.plugin_has_eexist_bug(plugin) is expected


@pytest.mark.parametrize(
    ("multus", "expected"),
    [("3.9", "0.3.1"), ("v3.9.3", "0.3.1"), ("4.0.2", "1.0.0"), ("v4.1.0", "1.1.0"),
     ("4.2.1-thick", "1.1.0"), ("", None), ("latest", None)],
)  # fmt: skip
def test_multus_ceiling(multus, expected):
    assert nad.multus_ceiling(multus) == expected
