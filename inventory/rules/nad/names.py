"""Syntax of the things a NAD names: Kubernetes names, Linux interface names, MAC and PCI
addresses, sysfs kernel paths."""

from __future__ import annotations

import hashlib
import re

DNS1123_LABEL_MAX = 63
_DNS1123_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?\Z")
_DNS1123_SUBDOMAIN = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\Z"
)
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?\Z")

# IFNAMSIZ is 16 including the terminating NUL.
IFNAME_MAX = 15

# Full PCI address as sysfs spells it: domain (4 hex digits, more on VMD domains), bus, device
# (0x00-0x1f), function (0-7).
_BDF = re.compile(r"[0-9a-fA-F]{4,8}:[0-9a-fA-F]{2}:[01][0-9a-fA-F]\.[0-7]\Z")
_SHORT_BDF = re.compile(r"[0-9a-fA-F]{2}:[01][0-9a-fA-F]\.[0-7]\Z")

# Go's net.ParseMAC (what host-device uses) accepts 00:11:22:33:44:55, 00-11-22-33-44-55 and
# 0011.2233.4455 forms (also 8- and 20-octet addresses, which no Ethernet NIC has).
_MAC_COLON = re.compile(r"[0-9a-fA-F]{2}([:-])[0-9a-fA-F]{2}(\1[0-9a-fA-F]{2}){4}\Z")
_MAC_DOTTED = re.compile(r"[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\.[0-9a-fA-F]{4}\Z")

SYSFS_DEVICES = "/sys/devices/"
SYSFS_VIRTUAL = "/sys/devices/virtual/"
_NETDEV_SUFFIX = re.compile(r"(/.+?)/net(?:/[^/]+)?/*\Z")


def is_dns1123_label(value: str) -> bool:
    return 0 < len(value) <= DNS1123_LABEL_MAX and bool(_DNS1123_LABEL.match(value))


def is_dns1123_subdomain(value: str) -> bool:
    return 0 < len(value) <= 253 and bool(_DNS1123_SUBDOMAIN.match(value))


def dns1123_label_problem(value: str) -> str | None:
    """Why `value` is not a DNS-1123 label, in words; None when it is one."""
    if not value:
        return "it is empty"
    if len(value) > DNS1123_LABEL_MAX:
        return f"it is {len(value)} characters long (at most {DNS1123_LABEL_MAX})"
    if not _DNS1123_LABEL.match(value) and _DNS1123_LABEL.match(value.lower()):
        return "it has upper-case letters"
    if not _DNS1123_LABEL.match(value):
        return (
            "it may only hold lower-case letters, digits and '-', and must start and end "
            "with a letter or digit"
        )
    return None


DNS1123_LABEL_RULE = (
    "a DNS-1123 label is 1 to 63 lower-case letters, digits or '-', starting and ending with a "
    'letter or digit (regex [a-z0-9]([-a-z0-9]*[a-z0-9])?), e.g. "team-blue"'
)
DNS1123_SUBDOMAIN_RULE = (
    "a DNS-1123 subdomain is at most 253 characters: DNS-1123 labels (lower-case letters, "
    "digits or '-', starting and ending with a letter or digit) joined by '.', e.g. "
    '"uplink-a" or "uplink.a"'
)


def dns1123_subdomain_problem(value: str) -> str | None:
    """Why `value` is not a DNS-1123 subdomain, in words; None when it is one."""
    if not value:
        return "it is empty"
    if len(value) > 253:
        return f"it is {len(value)} characters long (at most 253)"
    if is_dns1123_subdomain(value):
        return None
    if is_dns1123_subdomain(value.lower()):
        return "it has upper-case letters"
    return (
        "it may only hold lower-case letters, digits, '-' and '.', and each part between dots "
        "must start and end with a letter or digit"
    )


def ifname_problem(value: str) -> str | None:
    """Why the kernel would refuse `value` as an interface name (dev_valid_name), or None."""
    if not value:
        return "it is empty"
    if len(value.encode()) > IFNAME_MAX:
        return f"it is {len(value.encode())} bytes long (the kernel allows at most {IFNAME_MAX})"
    if value in (".", ".."):
        return f'"{value}" is reserved'
    for char in value:
        if char in "/:" or char.isspace():
            shown = repr(char) if char.isspace() else f"'{char}'"
            return f"it contains {shown} (the kernel refuses '/', ':' and whitespace)"
    return None


def is_full_bdf(value: str) -> bool:
    return bool(_BDF.match(value))


def is_short_bdf(value: str) -> bool:
    return bool(_SHORT_BDF.match(value))


def normalize_mac(value: str) -> str | None:
    """00:11:22:aa:bb:cc (lower case, colons) for any form net.ParseMAC takes; None if invalid."""
    value = value.strip()
    if _MAC_COLON.match(value):
        return value.replace("-", ":").lower()
    if _MAC_DOTTED.match(value):
        digits = value.replace(".", "").lower()
        return ":".join(digits[i : i + 2] for i in range(0, 12, 2))
    return None


def is_usable_mac(mac: str | None) -> bool:
    """A MAC that identifies one NIC: not all zeros, not multicast/broadcast."""
    if not mac:
        return False
    first = int(mac[:2], 16)
    return mac != "00:00:00:00:00:00" and not first & 1


def kernelpath_device_dir(path: str) -> str:
    """host-device lists `<kernelpath>/net` and takes the first entry, so the path it wants is
    the device directory (/sys/devices/pci0000:00/0000:00:19.0), not the netdev's own
    directory (…/net/eth1) that the inventory records. Strip a trailing /net[/<name>]."""
    match = _NETDEV_SUFFIX.match(path)
    return match.group(1) if match else path.rstrip("/") or path


def kernelpath_problem(path: str) -> tuple[str, str] | None:
    """(code, why) when host-device cannot use `path`; None when it can."""
    if not path.startswith("/"):
        return "KERNELPATH_INVALID", "it is a relative path"
    if not path.startswith(SYSFS_DEVICES):
        return "KERNELPATH_INVALID", f"it does not begin with {SYSFS_DEVICES}"
    if path.startswith(SYSFS_VIRTUAL):
        return (
            "KERNELPATH_VIRTUAL",
            "it is under /sys/devices/virtual/ (a veth, bridge or other virtual link, which has "
            "no device directory host-device can look up)",
        )
    return None


def node_scoped_nad_name(name: str, node: str, *, hashed: bool = False) -> str:
    """`<name>-<node>` as a valid DNS-1123 label. Node names may be FQDNs (dots) or up to 253
    characters: invalid characters become '-', and a name longer than 63 characters is cut and
    ends with 8 hex digits of the SHA-256 of "<name>-<node>" so that two long node names with a
    common prefix still get different NAD names (`hashed` forces that suffix, for two nodes
    whose names differ only in characters that became '-')."""
    node_part = re.sub(r"[^a-z0-9-]+", "-", node.lower()).strip("-") or "node"
    candidate = f"{name}-{node_part}"
    if not hashed and len(candidate) <= DNS1123_LABEL_MAX and _DNS1123_LABEL.match(candidate):
        return candidate
    digest = hashlib.sha256(f"{name}-{node}".encode()).hexdigest()[:8]
    head = candidate[: DNS1123_LABEL_MAX - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}"


def is_resource_name(value: str) -> bool:
    """A device-plugin extended resource: `<domain>/<name>` such as intel.com/sriov_netdevice."""
    domain, slash, resource = value.partition("/")
    return (
        bool(slash)
        and is_dns1123_subdomain(domain)
        and bool(len(resource) <= 63 and _QUALIFIED_NAME.match(resource))
    )
