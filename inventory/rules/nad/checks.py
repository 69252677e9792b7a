"""The checks the builder and the linter share: NAD and namespace names, the Multus version,
an explicit cniVersion, the `file exists` collision of host-device < 1.5.0, the pod interface
name. Each returns findings; neither caller repeats one."""

from __future__ import annotations

from inventory.rules.nad.facts import (
    ERROR,
    PRIMARY_POD_INTERFACE,
    DeviceFacts,
    Finding,
    PluginFacts,
    error,
    warning,
)
from inventory.rules.nad.names import (
    dns1123_label_problem,
    ifname_problem,
    is_dns1123_label,
    is_full_bdf,
    is_usable_mac,
    normalize_mac,
)
from inventory.rules.nad.versions import (
    CNI_VERSIONS,
    SAFE_CNI_VERSION,
    describe_plugin,
    eexist_explanation,
    multus_ceiling,
    plugin_has_eexist_bug,
    plugin_supported_versions,
    release_key,
    version_key,
)

# host-device's own precedence when several are set (getLink): device > hwaddr > kernelpath >
# pciBusID.
SELECTORS: tuple[str, ...] = ("device", "hwaddr", "kernelpath", "pciBusID")


def name_findings(namespace: str, name: str) -> list[Finding]:
    findings = []
    problem = dns1123_label_problem(name)
    if problem:
        findings.append(
            error(
                "NAME_INVALID",
                "name",
                f'NAD name "{name}" is not a DNS-1123 label: {problem}.',
                "Use lower-case letters, digits and '-', at most 63 characters, e.g. \"uplink-a\".",
            )
        )
    problem = dns1123_label_problem(namespace)
    if problem:
        findings.append(
            error(
                "NAMESPACE_INVALID",
                "namespace",
                f'Namespace "{namespace}" is not a DNS-1123 label: {problem}.',
                "Use the name of an existing namespace.",
            )
        )
    return findings


def multus_findings(multus_version: str) -> list[Finding]:
    if multus_ceiling(multus_version) is not None:
        return []
    what = (
        "The cluster's Multus version is unknown"
        if not multus_version
        else f'The cluster\'s Multus version "{multus_version}" cannot be read'
    )
    return [
        warning(
            "MULTUS_VERSION_UNKNOWN",
            "multus_version",
            f"{what}: NICPortal assumed it accepts cniVersion {SAFE_CNI_VERSION} at most, which "
            "every Multus release does (MicroK8s' v3.9 included).",
            "Record the cluster's Multus version (e.g. 3.9, 4.1.0) to allow a newer cniVersion.",
        )
    ]


def explicit_cni_version_findings(
    version: str, plugins: dict[str, PluginFacts | None], multus_version: str
) -> list[Finding]:
    """Findings for a cniVersion a person chose (or a NAD carries)."""
    if version not in CNI_VERSIONS:
        return [
            error(
                "CNI_VERSION_INVALID",
                "cni_version",
                f'cniVersion "{version}" is not a CNI spec version.',
                f"Use one of {', '.join(CNI_VERSIONS)}, or auto.",
            )
        ]
    findings = []
    for node, plugin in sorted(plugins.items()):
        supported = plugin_supported_versions(plugin)
        if supported and version not in supported:
            findings.append(
                error(
                    "CNI_VERSION_UNSUPPORTED",
                    "cni_version",
                    f"cniVersion {version} is not accepted by {describe_plugin(plugin)} on node "
                    f"{node} (it accepts {', '.join(supported)}): the pod would fail with "
                    "`incompatible CNI versions`.",
                    f"Use cniVersion {supported[-1]} or lower (auto picks it).",
                )
            )
    ceiling = multus_ceiling(multus_version)
    if ceiling and version_key(version) > version_key(ceiling):
        findings.append(
            error(
                "CNI_VERSION_MULTUS",
                "cni_version",
                f"cniVersion {version} is newer than Multus {multus_version} accepts "
                f"({ceiling} at most).",
                f"Use cniVersion {ceiling} or lower (auto picks it).",
            )
        )
    elif ceiling is None and version_key(version) > version_key(SAFE_CNI_VERSION):
        findings.append(
            warning(
                "CNI_VERSION_UNVERIFIED",
                "cni_version",
                f"cniVersion {version} cannot be checked against the cluster's Multus (its "
                f"version is unknown); Multus 3.x accepts {SAFE_CNI_VERSION} at most.",
                "Record the cluster's Multus version, or use cniVersion 0.3.1.",
            )
        )
    return findings


def eexist_finding(
    device_name: str,
    *,
    node: str,
    plugin: PluginFacts | None,
    pod_names: dict[str, str],
    device: DeviceFacts | None = None,
    usable: bool = True,
    severity: str = ERROR,
) -> Finding | None:
    """`"device": "<name>"` where the pod already has (or may get) a link of that name and the
    node's host-device moves links under their host name (< v1.5.0, multus-cni #1209).
    `pod_names` maps each such name to what makes it (for the message). `usable` False: the
    device itself may not go to a pod (another finding says why), so the fix does not offer
    it by MAC or PCI address."""
    if device_name not in pod_names or plugin_has_eexist_bug(plugin) is False:
        return None
    alternatives = []
    if device is not None and usable:
        mac = normalize_mac(device.mac)
        if mac and is_usable_mac(mac):
            alternatives.append(f'"hwaddr": "{mac}"')
        if is_full_bdf(device.pci_address):
            alternatives.append(f'"pciBusID": "{device.pci_address.lower()}"')
    if not usable:
        # Neither another selector nor a newer plugin helps: both would hand the device over.
        fix = (
            f"Point the NAD at a free interface instead of {device_name} (by hwaddr or "
            "pciBusID, or by a name the pod does not have)."
        )
    else:
        fix = (
            f"Select the device by {' or '.join(alternatives)} instead of its name"
            if alternatives
            else "Select the device by hwaddr or pciBusID instead of its name"
        ) + ", or upgrade the node's CNI plugins to v1.5.0 or newer."
    return Finding(
        "EEXIST_RISK",
        severity,
        "selector",
        (f"On node {node}, " if node else "")
        + f'"device": "{device_name}" would fail with `failed to move link file '
        "exists`: host-device before v1.5.0 moves the link into the pod under its host name, "
        f"and {pod_names[device_name]} (multus-cni #1209, seen with MicroK8s + Calico); "
        f"{eexist_explanation(plugin)}.",
        fix,
    )


def pod_interface_findings(
    pod_interface: str, other_pod_interfaces: tuple[str, ...], multus_version: str
) -> list[Finding]:
    problem = ifname_problem(pod_interface)
    if problem:
        return [
            error(
                "POD_INTERFACE_INVALID",
                "pod_interface",
                f'Pod interface name "{pod_interface}" is not a valid Linux interface name: '
                f"{problem}.",
                'Use 1-15 characters without "/", ":" or spaces, e.g. "net1".',
            )
        ]
    findings = []
    if not is_dns1123_label(pod_interface):
        release = release_key(multus_version)
        message = (
            f'Pod interface name "{pod_interface}" is not a DNS-1123 label; Multus up to v4.0 '
            "(MicroK8s ships v3.9) refuses such names in the networks annotation."
        )
        fix = 'Use lower-case letters, digits and "-", e.g. "net1" or "data0".'
        if release is None:
            findings.append(
                warning(
                    "POD_INTERFACE_NOT_DNS1123",
                    "pod_interface",
                    message + " The cluster's Multus version is unknown.",
                    fix,
                )
            )
        elif release < (4, 1, 0):
            findings.append(error("POD_INTERFACE_NOT_DNS1123", "pod_interface", message, fix))
    if pod_interface in (*other_pod_interfaces, "lo"):
        findings.append(
            error(
                "POD_INTERFACE_TAKEN",
                "pod_interface",
                f'The pod already has an interface named "{pod_interface}": Multus refuses it '
                "(`interface name … already exists`) or the rename fails with `file exists`.",
                "Pick a name the pod does not have yet, e.g. net1, net2 or data0.",
            )
        )
    return findings


def pod_name_clauses(pod_interface: str, other_pod_interfaces: tuple[str, ...]) -> dict[str, str]:
    """Names a link moved into the pod must not have, each with the clause that says why."""
    names = {
        pod_interface: f'the pod may already have an interface named "{pod_interface}" '
        "(another attachment: Multus names them net1, net2… by default)"
    }
    for name in other_pod_interfaces:
        made_by = (
            "the primary CNI's interface" if name == PRIMARY_POD_INTERFACE else "another attachment"
        )
        names[name] = f'the pod already has an interface named "{name}" ({made_by})'
    return names
