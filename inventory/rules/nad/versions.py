"""Which cniVersion a host-device binary and a Multus release accept, and whether the binary has
the `failed to move link file exists` bug. Facts from docs/HOST_DEVICE.md and upstream:

- containernetworking/plugins v0.7.x accept cniVersion up to 0.3.1, v0.8.0-v0.9.1 up to 0.4.0,
  v1.0.0-v1.5.x up to 1.0.0, v1.6.0+ up to 1.1.0.
- Up to v1.4.x host-device moves the link into the pod under its *host* name before renaming it,
  so a pod that already has a link of that name (eth0 from the primary CNI) fails with EEXIST
  (multus-cni #1209). v1.5.0 moves it under a temporary name; v1.6.0 through a temporary netns.
- Multus 3.x (libcni 0.7/0.8) is deployed as a thin plugin with `--cni-version=0.3.1` (upstream
  daemonset and MicroK8s' addon alike), so delegate results are converted to 0.3.1: use 0.3.1.
  Multus 4.0 vendors libcni v1.1 (CNI spec up to 1.0.0); 4.1 moved to libcni v1.2 (spec 1.1.0,
  multus-cni #1250).
"""

from __future__ import annotations

import functools
import re

from inventory.rules.nad.facts import PluginFacts

# Every CNI spec version a NAD may name, oldest first.
CNI_VERSIONS: tuple[str, ...] = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0")

# Every host-device release and every Multus release accepts 0.3.1: the safe assumption when
# a fact is missing.
SAFE_CNI_VERSION = "0.3.1"

_VERSION = re.compile(r"\d+\.\d+\.\d+\Z")
_RELEASE = re.compile(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?")


def version_key(version: str) -> tuple[int, int, int] | None:
    """(major, minor, patch) of a CNI spec version such as "0.3.1"; None if it is not one."""
    if not isinstance(version, str) or not _VERSION.match(version):
        return None
    major, minor, patch = version.split(".")
    return int(major), int(minor), int(patch)


def release_key(release: str | None) -> tuple[int, int, int] | None:
    """A release string as the agent or a user reports it ("1.1.1", "v1.6.2", "3.9",
    "v4.1.0-thick") -> (major, minor, patch); None when there is no leading number."""
    if not release:
        return None
    match = _RELEASE.match(release.strip())
    if not match:
        return None
    return tuple(int(part or 0) for part in match.groups())


def plugin_ceiling_for_release(release: tuple[int, int, int]) -> str:
    if release < (0, 8, 0):
        return "0.3.1"
    if release < (1, 0, 0):
        return "0.4.0"
    if release < (1, 6, 0):
        return "1.0.0"
    return "1.1.0"


# Cached: PluginFacts is frozen and hashable, a fleet has a handful of distinct plugins, and the
# linter asks once per node (5,000 times for one NAD at fleet scale).
@functools.lru_cache(maxsize=256)
def plugin_supported_versions(plugin: PluginFacts | None) -> tuple[str, ...] | None:
    """The cniVersions a host-device binary accepts, oldest first; None when it cannot be told.
    What the binary itself says (CNI_COMMAND=VERSION) wins over the version table."""
    if plugin is None:
        return None
    reported = sorted(
        {v for v in plugin.supported_versions if version_key(v) is not None}, key=version_key
    )
    if reported:
        return tuple(reported)
    release = release_key(plugin.version)
    if release is None:
        return None
    ceiling = version_key(plugin_ceiling_for_release(release))
    return tuple(v for v in CNI_VERSIONS if version_key(v) <= ceiling)


def multus_ceiling(multus_version: str) -> str | None:
    """Highest cniVersion a NAD may use with this Multus release; None when unknown."""
    release = release_key(multus_version)
    if release is None:
        return None
    if release < (4, 0, 0):
        return "0.3.1"
    if release < (4, 1, 0):
        return "1.0.0"
    return "1.1.0"


def highest_cni_version(plugin: PluginFacts | None, multus_version: str) -> str | None:
    """The highest cniVersion both this node's host-device and the cluster's Multus accept.
    An unknown Multus is assumed to accept 0.3.1 at most (every release does); None when the
    plugin's versions cannot be told or nothing is common."""
    supported = plugin_supported_versions(plugin)
    if supported is None:
        return None
    ceiling = version_key(multus_ceiling(multus_version) or SAFE_CNI_VERSION)
    candidates = [v for v in supported if version_key(v) <= ceiling]
    return candidates[-1] if candidates else None


@functools.lru_cache(maxsize=256)
def plugin_has_eexist_bug(plugin: PluginFacts | None) -> bool | None:
    """True when this host-device moves links into the pod under their host name (< v1.5.0),
    or may do so; False when it is v1.5.0 or newer; None when nothing is known."""
    if plugin is None:
        return None
    release = release_key(plugin.version)
    if release is not None:
        return release < (1, 5, 0)
    supported = plugin_supported_versions(plugin)
    if not supported:
        return None
    # "version unknown" (Debian builds): infer the release range from the newest spec version.
    # 1.1.0 means v1.6.0+; 1.0.0 means v1.0.0-v1.5.x, where v1.0-v1.4 have the bug and nothing
    # tells them apart from v1.5.x, so treat it as affected; older means < v1.0.0.
    return version_key(supported[-1]) < (1, 1, 0)


def describe_plugin(plugin: PluginFacts | None) -> str:
    """How a message names the binary: "host-device v1.1.1" or what was inferred."""
    if plugin is None:
        return "an unknown host-device (the node agent reported no host-device binary)"
    if release_key(plugin.version) is not None:
        return f"host-device v{plugin.version.lstrip('v')}"
    supported = plugin_supported_versions(plugin)
    if not supported:
        return "a host-device of unknown version"
    newest = supported[-1]
    releases = {
        "1.1.0": "v1.6.0 or newer",
        "1.0.0": "v1.0.0-v1.5.x",
        "0.4.0": "v0.8.0-v0.9.1",
    }.get(newest, "older than v0.8.0")
    return (
        f'a host-device that prints "version unknown" and accepts cniVersion up to {newest} '
        f"(so a {releases} release)"
    )


def eexist_explanation(plugin: PluginFacts | None) -> str:
    """Why the EEXIST bug applies (or cannot be ruled out) for this binary."""
    bug = plugin_has_eexist_bug(plugin)
    who = describe_plugin(plugin)
    if bug is None:
        return f"the node runs {who}, so the bug (fixed in v1.5.0) cannot be ruled out"
    release = release_key(plugin.version) if plugin else None
    if release is None and plugin_supported_versions(plugin)[-1] == "1.0.0":
        return (
            f"the node runs {who}; v1.0.0-v1.4.x have the bug (fixed in v1.5.0) and nothing "
            "tells them apart from v1.5.x, so it is treated as affected"
        )
    return f"the node runs {who}, older than v1.5.0 where the bug was fixed"
