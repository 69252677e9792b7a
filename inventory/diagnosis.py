"""Why is this pod stuck in ContainerCreating? The pure diagnosis rules: facts in, one verdict out.

No I/O, no ORM, no Kubernetes calls. `services/diagnosis.py` gathers the facts (the pod, its
Events, the NADs it names, the inventory of its node and of the others) into the dataclasses
below; `diagnose()` picks the first rule that explains the failure and says, in words a person
reads, what happened, the evidence, and the fix (with a corrected NAD when one can be built).

Order of the rules (the first that speaks decides):

1. the pod does not exist; its `networks` annotation cannot be read;
2. two attachments ask for one pod interface name (Multus refuses, or the rename collides);
3. per attachment, in annotation order: the NAD is missing or invalid; it selects no device
   (or relies on a device plugin that gave none); the device it selects collides with a pod
   interface (`file exists`, host-device < 1.5.0); it is the node's primary NIC; it is a PCI
   function without netdev; it is absent from the node (renamed orphan, held by a pod, stranded,
   on another node, nowhere);
4. whatever the Event says that the facts did not explain (by its message);
5. nothing wrong: healthy, or pending without an Event yet.

The Event is the plugin's own word: when it names the failing network, that attachment is judged
first, and its message decides between two explanations the inventory alone cannot tell apart.
Stranded NICs (`recovery_commands`) are here too: the commands an operator runs on the node.
"""

from __future__ import annotations

import difflib
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from inventory import nad
from inventory.choices import OwnershipState
from inventory.multus import NetworkSelection, NetworkStatus
from inventory.nad.devices import is_primary_nic
from inventory.nad.ipam import ipam_request_from_config
from inventory.nad.names import normalize_mac
from inventory.nad.versions import describe_plugin

SANDBOX_FAILURE_REASON = "FailedCreatePodSandBox"

# Severity of a verdict, for the badge a page shows.
OK = "ok"
PENDING = "pending"
ERROR = "error"

# Messages host-device and Multus write (docs/HOST_DEVICE.md, last table).
MSG_EEXIST = "file exists"
MSG_LINK_NOT_FOUND = "Link not found"
MSG_NO_SELECTOR = 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'
MSG_NO_NETDEV = "failed to find device name for pci address"
MSG_NAD_NOT_FOUND = "cannot find a network-attachment-definition"
MSG_IFNAME_EXISTS = "already exists"

# Lint codes that mean "host-device cannot even load this config".
_CONFIG_BROKEN = frozenset(
    {
        "CONFIG_INVALID_JSON",
        "CONFIG_NOT_OBJECT",
        "CONFIG_NO_TYPE",
        "MULTIPLE_HOST_DEVICES",
        "SELECTOR_INVALID",
        "DEVICE_NAME_INVALID",
        "HWADDR_INVALID",
        "PCI_ADDRESS_SHORT",
        "PCI_ADDRESS_INVALID",
        "KERNELPATH_INVALID",
        "KERNELPATH_VIRTUAL",
        "KERNELPATH_NOT_DEVICE_DIR",
        "CNI_VERSION_INVALID",
        "CNI_VERSION_UNSUPPORTED",
        "CNI_VERSION_MULTUS",
    }
)

# Multus: `[ns/pod/uid:network]: error adding container to network "network": ...`
_FAILED_NETWORK = re.compile(r'error adding container to network "(?P<network>[^"]+)"')


# --- facts in ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFacts:
    reason: str
    message: str
    type: str = "Warning"
    count: int = 1
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class NadFacts:
    """A NAD as the cluster serves it (found False: the API answered 404)."""

    namespace: str
    name: str
    found: bool = True
    config: str = ""
    resource_name: str = ""
    findings: tuple[nad.Finding, ...] = ()  # nad.lint() against the inventory

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class HostInterface:
    """One interface of the inventory, with what the diagnosis needs beyond nad.DeviceFacts."""

    node: str
    name: str
    mac: str = ""
    pci_address: str = ""
    alias: str = ""
    kind: str = "physical"
    driver: str = ""
    state: str = OwnershipState.FREE.value
    reason: str = ""
    holder: str = ""
    present: bool = True
    has_netdev: bool = True
    orphan: bool = False
    reserved_team: str = ""

    def device_facts(self, plugin: nad.PluginFacts | None) -> nad.DeviceFacts:
        return nad.DeviceFacts(
            node=self.node,
            name=self.name,
            mac=self.mac,
            pci_address=self.pci_address,
            kind=self.kind or "physical",
            driver=self.driver,
            state=self.state,
            reason=self.reason,
            holder=self.holder,
            reserved_team=self.reserved_team,
            has_netdev=self.has_netdev,
            plugin=plugin,
        )


@dataclass(frozen=True, slots=True)
class PodFacts:
    namespace: str
    name: str
    found: bool = True
    node: str = ""
    phase: str = ""  # "" for a planned pod (not created: what would happen?)
    networks: tuple[NetworkSelection, ...] = ()
    networks_error: str = ""
    network_status: tuple[NetworkStatus, ...] = ()
    events: tuple[EventFacts, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class DiagnosisFacts:
    pod: PodFacts
    nads: Mapping[str, NadFacts] = field(default_factory=dict)  # "ns/name" -> NAD
    # Every node's interfaces (the pod's node included); a node absent here is not inventoried.
    interfaces_by_node: Mapping[str, Sequence[HostInterface]] = field(default_factory=dict)
    plugin: nad.PluginFacts | None = None  # host-device on the pod's node
    multus_version: str = ""


# --- verdict out ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Fix:
    text: str
    nad_yaml: str = ""  # a corrected NAD (nad.build), "" when none can be offered
    commands: tuple[str, ...] = ()  # shell commands an operator runs on the node


@dataclass(frozen=True, slots=True)
class Diagnosis:
    code: str  # stable UPPER_SNAKE code
    severity: str  # "ok" | "pending" | "error"
    title: str
    explanation: str
    namespace: str
    pod: str
    node: str = ""
    attachment: str = ""  # "ns/nad@ifname" the verdict is about, "" for the pod as a whole
    evidence: tuple[Evidence, ...] = ()
    fix: Fix | None = None


# --- the rules -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    facts: DiagnosisFacts
    failure: EventFacts | None  # newest sandbox failure
    failed_network: str  # the network Multus names in it, "" if none

    @property
    def pod(self) -> PodFacts:
        return self.facts.pod

    @property
    def message(self) -> str:
        return self.failure.message if self.failure else ""

    def says(self, text: str) -> bool:
        return text.lower() in self.message.lower()

    def verdict(
        self,
        code: str,
        title: str,
        explanation: str,
        *,
        selection: NetworkSelection | None = None,
        evidence: Sequence[Evidence] = (),
        fix: Fix | None = None,
        severity: str = ERROR,
    ) -> Diagnosis:
        items = list(evidence)
        if self.failure is not None:
            items.insert(0, Evidence("Event", f"{self.failure.reason}: {self.failure.message}"))
        if self.pod.node:
            items.append(Evidence("Node", self.pod.node))
        return Diagnosis(
            code=code,
            severity=severity,
            title=title,
            explanation=explanation,
            namespace=self.pod.namespace,
            pod=self.pod.name,
            node=self.pod.node,
            attachment=_attachment(selection) if selection else "",
            evidence=tuple(items),
            fix=fix,
        )


def diagnose(facts: DiagnosisFacts) -> Diagnosis:
    pod = facts.pod
    failure = newest_sandbox_failure(pod.events)
    match = _FAILED_NETWORK.search(failure.message) if failure else None
    ctx = _Context(facts, failure, match["network"] if match else "")

    if not pod.found:
        return ctx.verdict(
            "POD_NOT_FOUND",
            f"Pod {pod.key} does not exist",
            f"The Kubernetes API has no pod {pod.name} in namespace {pod.namespace}: it was "
            "deleted, or the name or namespace is misspelt.",
            fix=Fix(f"Check the name with `kubectl get pods -n {pod.namespace}`."),
        )
    if pod.networks_error:
        return ctx.verdict(
            "NETWORKS_ANNOTATION_INVALID",
            "The pod's networks annotation cannot be read",
            f"Multus refuses the pod's k8s.v1.cni.cncf.io/networks annotation: "
            f"{pod.networks_error}.",
            fix=Fix(
                "Write it as `namespace/nad@ifname, other` or as a JSON list of "
                '{"name": ..., "namespace": ..., "interface": ...} objects.'
            ),
        )
    duplicate = _duplicate_interface(ctx)
    if duplicate:
        return duplicate
    for selection in _judging_order(ctx):
        verdict = _judge_selection(ctx, selection)
        if verdict is not None:
            return verdict
    return _by_event_or_healthy(ctx)


def newest_sandbox_failure(events: Sequence[EventFacts]) -> EventFacts | None:
    failures = [e for e in events if e.reason == SANDBOX_FAILURE_REASON]
    if not failures:
        return None
    # Events without a timestamp sort first: the newest stamped one wins, else the last listed.
    return sorted(failures, key=lambda e: (e.last_seen is not None, e.last_seen or 0))[-1]


def _attachment(selection: NetworkSelection) -> str:
    return f"{selection.nad_key}@{selection.interface}"


def _judging_order(ctx: _Context) -> list[NetworkSelection]:
    """The attachment the Event names first (Multus uses the config's name, which is usually the
    NAD's), then the others in annotation order."""
    selections = list(ctx.pod.networks)
    if not ctx.failed_network:
        return selections

    def named(selection: NetworkSelection) -> bool:
        if selection.name == ctx.failed_network:
            return True
        nad_facts = ctx.facts.nads.get(selection.nad_key)
        return bool(nad_facts and _config_name(nad_facts.config) == ctx.failed_network)

    return sorted(selections, key=lambda s: not named(s))


def _config_name(config: str) -> str:
    try:
        parsed = json.loads(config)
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested ~1,000 deep
        return ""
    return str(parsed.get("name") or "") if isinstance(parsed, dict) else ""


def _duplicate_interface(ctx: _Context) -> Diagnosis | None:
    seen: dict[str, NetworkSelection] = {}
    for selection in ctx.pod.networks:
        name = selection.interface
        if name == "eth0" or name == "lo":
            first_text = "the pod's own " + (
                "eth0 (made by the primary CNI)" if name == "eth0" else "loopback"
            )
        elif name in seen:
            first_text = f"attachment {_attachment(seen[name])}"
        else:
            seen[name] = selection
            continue
        defaulted = (
            f" (Multus named it {name} by its position in the annotation)"
            if selection.interface_defaulted
            else ""
        )
        return ctx.verdict(
            "DUPLICATE_POD_INTERFACE",
            f'Two interfaces named "{name}" in one pod',
            f"Attachment {_attachment(selection)} asks for pod interface {name}{defaulted}, "
            f"which {first_text} already uses. An interface name must be unique within the pod: "
            "Multus refuses the second one (`interface name … already exists`) or host-device's "
            "rename fails with `file exists`.",
            selection=selection,
            evidence=[
                Evidence("Networks annotation", ", ".join(_attachment(s) for s in ctx.pod.networks))
            ],
            fix=Fix(
                "Give every attachment its own interface name in the annotation, e.g. "
                + ", ".join(f"{s.nad_key}@net{i}" for i, s in enumerate(ctx.pod.networks, start=1))
                + "."
            ),
        )
    return None


def _judge_selection(ctx: _Context, selection: NetworkSelection) -> Diagnosis | None:
    if _attached(ctx.pod, selection):
        return None  # Multus reported it attached: this one works
    nad_facts = ctx.facts.nads.get(selection.nad_key)
    if nad_facts is None or not nad_facts.found:
        return _nad_missing(ctx, selection)
    errors = [f for f in nad_facts.findings if f.severity == nad.ERROR]
    broken = [f for f in errors if f.code in _CONFIG_BROKEN]
    if any(f.code == "NOT_HOST_DEVICE" for f in nad_facts.findings):
        return None  # another plugin: not ours to judge
    if broken:
        return ctx.verdict(
            "NAD_INVALID",
            f"NAD {nad_facts.key} is invalid",
            f"The NetworkAttachmentDefinition {nad_facts.key} that attachment "
            f"{_attachment(selection)} uses cannot work: " + " ".join(f.message for f in broken),
            selection=selection,
            evidence=[Evidence("NAD config", nad_facts.config)],
            fix=Fix(" ".join(f.fix for f in broken if f.fix) or "Fix the NAD's spec.config."),
        )
    entry = _host_device_entry(nad_facts.config)
    if entry is None:
        return None
    selector, value = _winning_selector(entry)
    if selector is None:
        return _no_selector(ctx, selection, nad_facts)
    return _judge_device(ctx, selection, nad_facts, entry, selector, value)


def _attached(pod: PodFacts, selection: NetworkSelection) -> bool:
    for status in pod.network_status:
        namespace, _, name = status.name.partition("/")
        key = status.name if name else f"{pod.namespace}/{namespace}"
        if key == selection.nad_key and status.interface in ("", selection.interface):
            return True
    return False


def _nad_missing(ctx: _Context, selection: NetworkSelection) -> Diagnosis:
    others = sorted(
        n.name for n in ctx.facts.nads.values() if n.found and n.namespace == selection.namespace
    )
    evidence = [Evidence("Requested NAD", selection.nad_key)]
    close = difflib.get_close_matches(selection.name, others, n=1)
    if others:
        evidence.append(Evidence(f"NADs in namespace {selection.namespace}", ", ".join(others)))
    did_you_mean = f" Did you mean {selection.namespace}/{close[0]}?" if close else ""
    return ctx.verdict(
        "NAD_MISSING",
        f"NAD {selection.nad_key} does not exist",
        f"The pod asks for network {selection.nad_key}, but there is no "
        f"NetworkAttachmentDefinition {selection.name} in namespace {selection.namespace}: "
        "Multus cannot find the delegate and fails the sandbox. A NAD is namespaced: one in "
        "another namespace does not count unless the annotation names that namespace.",
        selection=selection,
        evidence=evidence,
        fix=Fix(
            f"Create NAD {selection.nad_key} (NICPortal's NAD builder makes one for a free NIC), "
            "or correct the name or namespace in the pod's networks annotation." + did_you_mean
        ),
    )


def _host_device_entry(config: str) -> dict | None:
    try:
        parsed = json.loads(config)
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested ~1,000 deep
        return None
    if not isinstance(parsed, dict):
        return None
    if parsed.get("type") == "host-device":
        return parsed
    for plugin in parsed.get("plugins") or []:
        if isinstance(plugin, dict) and plugin.get("type") == "host-device":
            return {**plugin, "cniVersion": parsed.get("cniVersion"), "name": parsed.get("name")}
    return None


def _winning_selector(entry: Mapping) -> tuple[str | None, str]:
    for selector in nad.SELECTORS:  # host-device's own precedence
        value = entry.get(selector)
        if isinstance(value, str) and value:
            return selector, value
    return None, ""


def _no_selector(ctx: _Context, selection: NetworkSelection, nad_facts: NadFacts) -> Diagnosis:
    evidence = [Evidence("NAD config", nad_facts.config)]
    if nad_facts.resource_name:
        evidence.append(Evidence("NAD resourceName", nad_facts.resource_name))
        return ctx.verdict(
            "NO_DEVICE_ID_FROM_DEVICE_PLUGIN",
            "The device plugin gave host-device no device",
            f"NAD {nad_facts.key} selects no device itself and relies on the device plugin "
            f"resource {nad_facts.resource_name}: Multus passes the allocated PCI address as "
            "deviceID. None arrived, so host-device fails with "
            f"`{MSG_NO_SELECTOR}`. Usually the pod does not request the resource, the device "
            "plugin is not running on the node, or it has no device left.",
            selection=selection,
            evidence=evidence,
            fix=Fix(
                f"Request the resource in the pod: resources.limits {{{nad_facts.resource_name}: "
                "1}} (and the same in requests); check that the device plugin runs on node "
                f"{ctx.pod.node or '(the pod is not scheduled)'} and advertises free devices "
                "(`kubectl describe node`, Allocatable)."
            ),
        )
    build = _offer_nad(ctx, selection, nad_facts, _free_interfaces(ctx)[:1], "auto")
    return ctx.verdict(
        "NO_SELECTOR",
        f"NAD {nad_facts.key} selects no device",
        f"The host-device config in NAD {nad_facts.key} has none of device, hwaddr, kernelpath "
        f"or pciBusID, and no device plugin resourceName: host-device fails with "
        f"`{MSG_NO_SELECTOR}`.",
        selection=selection,
        evidence=evidence,
        fix=Fix(
            'Add exactly one selector to the config (e.g. "hwaddr": "<MAC>" of a free NIC on the '
            "node)" + (f"; {build[0]}" if build[0] else "") + ".",
            nad_yaml=build[1],
        ),
    )


def _interfaces(ctx: _Context, node: str) -> Sequence[HostInterface]:
    return ctx.facts.interfaces_by_node.get(node, ())


def _free_interfaces(ctx: _Context) -> list[HostInterface]:
    return [
        i
        for i in _interfaces(ctx, ctx.pod.node)
        if i.state == OwnershipState.FREE and i.present and i.has_netdev and not i.orphan
    ]


def _matches(selector: str, value: str, interface: HostInterface) -> bool:
    if selector == "device":
        return interface.name == value
    if selector == "hwaddr":
        wanted = normalize_mac(value)
        return bool(wanted) and normalize_mac(interface.mac) == wanted
    if selector == "pciBusID":
        return bool(interface.pci_address) and interface.pci_address.lower() == value.lower()
    return False  # kernelpath: the agent reports no sysfs paths


def _describe(interface: HostInterface) -> str:
    parts = [f"{interface.node}/{interface.name}"]
    if interface.mac:
        parts.append(f"MAC {interface.mac}")
    if interface.pci_address:
        parts.append(f"PCI {interface.pci_address}")
    parts.append(f"state {interface.state}")
    if interface.reason:
        parts.append(interface.reason)
    return ", ".join(parts)


def _judge_device(
    ctx: _Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    entry: Mapping,
    selector: str,
    value: str,
) -> Diagnosis | None:
    node = ctx.pod.node
    where = f'"{selector}": "{value}"'
    evidence = [
        Evidence("NAD config", nad_facts.config),
        Evidence("Selector", where),
        Evidence("host-device on the node", describe_plugin(ctx.facts.plugin)),
    ]
    if not node:
        return None  # unscheduled: nothing has been tried yet, and no node to judge against
    if node not in ctx.facts.interfaces_by_node:
        return None  # the node is not inventoried: only the Event can speak
    candidates = [i for i in _interfaces(ctx, node) if _matches(selector, value, i)]
    on_node = [i for i in candidates if i.present and i.has_netdev]
    device = on_node[0] if on_node else None

    # 1. the collision: the link is moved into the pod under its host name (< v1.5.0).
    pod_names = {"eth0": "the pod's eth0 (made by the primary CNI)"}
    for other in ctx.pod.networks:
        if other != selection:
            pod_names[other.interface] = (
                f"the pod's {other.interface} (attachment {_attachment(other)})"
            )
    collides = selector == "device" and value in pod_names
    bug = nad.plugin_has_eexist_bug(ctx.facts.plugin)
    if collides and (ctx.says(MSG_EEXIST) or (bug is not False and device is not None)):
        return _eexist(ctx, selection, nad_facts, entry, device, value, pod_names[value], evidence)

    if device is not None:
        evidence.append(Evidence("Device on the node", _describe(device)))
        if is_primary_nic(device.device_facts(ctx.facts.plugin)):
            return _primary_nic(ctx, selection, nad_facts, entry, device, evidence)
        if device.state == OwnershipState.USERSPACE and selector == "pciBusID":
            return None  # DPDK mode: host-device moves nothing and succeeds
        return None  # present and selectable: not this attachment's fault
    pci_only = [i for i in candidates if i.present and not i.has_netdev]
    if pci_only or ctx.says(MSG_NO_NETDEV):
        return _pci_without_netdev(ctx, selection, pci_only[0] if pci_only else None, evidence)
    return _absent(ctx, selection, nad_facts, entry, selector, value, candidates, evidence)


def _eexist(
    ctx: _Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    entry: Mapping,
    device: HostInterface | None,
    value: str,
    colliding: str,
    evidence: list[Evidence],
) -> Diagnosis:
    plugin_text = describe_plugin(ctx.facts.plugin)
    if device is not None:
        evidence.append(Evidence("Device on the node", _describe(device)))
    primary = device is not None and is_primary_nic(device.device_facts(ctx.facts.plugin))
    if primary:
        fix_text = (
            f"Do not hand {value} to a pod at all: it is node {ctx.pod.node}'s primary NIC, and "
            "selecting it by hwaddr or pciBusID would move it out of the node, which then drops "
            "off the cluster (multus-cni #557). Point the NAD at a free NIC instead"
        )
        sentence, nad_yaml = _offer_nad(
            ctx, selection, nad_facts, _free_interfaces(ctx)[:1], "auto"
        )
    else:
        selector = "pciBusID" if device is not None and device.pci_address else "hwaddr"
        fix_text = (
            f"Select the device by {selector} instead of its name (host-device then moves it under "
            "a name the pod does not have), or upgrade the node's CNI plugins to v1.5.0 or newer"
        )
        sentence, nad_yaml = _offer_nad(
            ctx, selection, nad_facts, [device] if device else [], selector, entry=entry
        )
    if sentence:
        fix_text += f"; {sentence}"
    return ctx.verdict(
        "EEXIST_COLLISION",
        f'"device": "{value}" collides with the pod\'s own {value} (file exists)',
        f"host-device moves the link into the pod under its host name {value} before renaming "
        f"it to {selection.interface}, and {colliding} already has that name, so the kernel "
        f"refuses the move with `failed to move link file exists`. The node runs {plugin_text}; "
        "the bug was fixed in v1.5.0 (multus-cni #1209, seen with MicroK8s + Calico).",
        selection=selection,
        evidence=[*evidence, Evidence("Colliding pod interface", f"{value}: {colliding}")],
        fix=Fix(fix_text + ".", nad_yaml=nad_yaml),
    )


def _primary_nic(
    ctx: _Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    entry: Mapping,
    device: HostInterface,
    evidence: list[Evidence],
) -> Diagnosis:
    sentence, nad_yaml = _offer_nad(ctx, selection, nad_facts, _free_interfaces(ctx)[:1], "auto")
    return ctx.verdict(
        "PRIMARY_NIC_REQUESTED",
        f"NAD {nad_facts.key} asks for node {ctx.pod.node}'s primary NIC {device.name}",
        f"{device.node}/{device.name} is the node's own uplink ({device.reason}). host-device "
        "would move it into the pod and the node would lose its connection to the cluster "
        "(multus-cni #557): never hand it to a pod.",
        selection=selection,
        evidence=evidence,
        fix=Fix(
            "Point the NAD at a free NIC of the node (the node page lists them)"
            + (f"; {sentence}" if sentence else "")
            + ".",
            nad_yaml=nad_yaml,
        ),
    )


def _pci_without_netdev(
    ctx: _Context,
    selection: NetworkSelection,
    device: HostInterface | None,
    evidence: list[Evidence],
) -> Diagnosis:
    if device is not None:
        evidence.append(Evidence("Device on the node", _describe(device)))
        driver = device.driver or "no driver"
        what = (
            f"PCI function {device.pci_address} on {device.node} has no network interface "
            f"({driver})"
        )
    else:
        what = "The PCI function the NAD selects has no network interface on the node"
    return ctx.verdict(
        "PCI_WITHOUT_NETDEV",
        "The selected PCI function has no network interface",
        f"{what}: host-device fails with `{MSG_NO_NETDEV} …`. It is bound to a userspace "
        "driver (vfio-pci, uio), to no driver at all, or it is not a NIC.",
        selection=selection,
        evidence=evidence,
        fix=Fix(
            "Bind a kernel network driver to it (see the stranded NICs page for the commands), or, "
            "for DPDK, use it through pciBusID or a device plugin."
        ),
    )


def _absent(
    ctx: _Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    entry: Mapping,
    selector: str,
    value: str,
    candidates: list[HostInterface],
    evidence: list[Evidence],
) -> Diagnosis:
    node = ctx.pod.node
    not_found = (
        f"host-device finds no {value} on node {node} and fails with "
        f"`failed to find host device: {MSG_LINK_NOT_FOUND}`"
    )
    # A renamed orphan: back from a dead pod as netN, with the original name in its alias.
    if selector == "device":
        for interface in _interfaces(ctx, node):
            if interface.present and interface.orphan and interface.alias == value:
                evidence.append(Evidence("Device on the node", _describe(interface)))
                return ctx.verdict(
                    "DEVICE_ABSENT_RENAMED",
                    f"{value} is on node {node}, but renamed {interface.name}",
                    f"{not_found}. The NIC came back from a pod whose network namespace died "
                    f"without CNI DEL: it is on the host as {interface.name}, with its original "
                    f"name {value} in its alias.",
                    selection=selection,
                    evidence=evidence,
                    fix=Fix(
                        f"Rename it back on node {node} (the pod then starts on its next retry).",
                        commands=recovery_commands(
                            name=interface.name, original_name=value, orphan=True
                        ),
                    ),
                )
    gone = [i for i in candidates if not i.present]
    held = [i for i in gone if i.state == OwnershipState.POD]
    own = f"pod {ctx.pod.key}"
    if any(_holder_is(i.holder, own) for i in held):
        return None  # in this very pod: the attachment worked
    if held:
        device = held[0]
        evidence.append(Evidence("Device on the node", _describe(device)))
        evidence.append(Evidence("Held by", device.holder or "a pod"))
        sentence, nad_yaml = _offer_nad(
            ctx, selection, nad_facts, _free_interfaces(ctx)[:1], "auto"
        )
        return ctx.verdict(
            "DEVICE_ABSENT_HELD_BY_POD",
            f"{value} is already in {device.holder or 'another pod'}",
            f"{not_found}: host-device moved it into {device.holder or 'another pod'} "
            f"({device.reason}). A NIC can be in one pod at a time.",
            selection=selection,
            evidence=evidence,
            fix=Fix(
                f"Delete or move {device.holder or 'that pod'} first, or point this pod at another "
                "free NIC" + (f"; {sentence}" if sentence else "") + ".",
                nad_yaml=nad_yaml,
            ),
        )
    stranded = [i for i in gone if i.state == OwnershipState.MISSING]
    if stranded:
        device = stranded[0]
        evidence.append(Evidence("Device on the node", _describe(device)))
        return ctx.verdict(
            "DEVICE_ABSENT_STRANDED",
            f"{value} is stranded: gone from node {node} and no pod holds it",
            f"{not_found}. The inventory saw {device.name} on the node before; it vanished and no "
            "pod claims it, so it is most likely stuck in the network namespace of a pod that was "
            "force-deleted without CNI DEL.",
            selection=selection,
            evidence=evidence,
            fix=Fix(
                "Find the namespace holding it and move it back (stranded NICs page), or point the "
                "NAD at another free NIC.",
                commands=recovery_commands(
                    name=device.name,
                    original_name=device.name,
                    mac=device.mac,
                    pci_address=device.pci_address,
                    driver=device.driver,
                ),
            ),
        )
    elsewhere = [
        (other, i)
        for other, interfaces in sorted(ctx.facts.interfaces_by_node.items())
        if other != node
        for i in interfaces
        if _matches(selector, value, i) and i.present
    ]
    if elsewhere:
        nodes = sorted({other for other, _ in elsewhere})
        for _, interface in elsewhere[:3]:
            evidence.append(Evidence("Found on", _describe(interface)))
        placement = (
            f"nodeSelector kubernetes.io/hostname: {nodes[0]}"
            if len(nodes) == 1
            else "a required node affinity for " + ", ".join(nodes)
        )
        sentence, nad_yaml = _offer_nad(
            ctx, selection, nad_facts, _free_interfaces(ctx)[:1], "auto"
        )
        return ctx.verdict(
            "DEVICE_ABSENT_WRONG_NODE",
            f"{value} is on {', '.join(nodes)}, not on {node}",
            f"{not_found}. The pod was scheduled on {node}, but {where_text(selector, value)} "
            f"exists on {', '.join(nodes)}.",
            selection=selection,
            evidence=evidence,
            fix=Fix(
                f"Pin the pod to {' or '.join(nodes)} ({placement}), or use a NAD for a free NIC "
                f"on {node}" + (f"; {sentence}" if sentence else "") + ".",
                nad_yaml=nad_yaml,
            ),
        )
    sentence, nad_yaml = _offer_nad(ctx, selection, nad_facts, _free_interfaces(ctx)[:1], "auto")
    return ctx.verdict(
        "DEVICE_ABSENT_EVERYWHERE",
        f"No node has {value}",
        f"{not_found}, and no node in the inventory has {where_text(selector, value)}: a "
        "misspelt name or MAC, or a NIC that was never there.",
        selection=selection,
        evidence=evidence,
        fix=Fix(
            "Point the NAD at an interface the inventory lists"
            + (f"; {sentence}" if sentence else "")
            + ".",
            nad_yaml=nad_yaml,
        ),
    )


def _holder_is(holder: str, pod: str) -> bool:
    # ownership.py writes "pod ns/name"; a longer holder text may follow after a space.
    return holder == pod or holder.startswith(pod + " ") or holder.startswith(pod + ",")


def where_text(selector: str, value: str) -> str:
    return {
        "device": f"an interface named {value}",
        "hwaddr": f"an interface with MAC {value}",
        "pciBusID": f"PCI function {value}",
    }.get(selector, f"{selector} {value}")


def _offer_nad(
    ctx: _Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    devices: Sequence[HostInterface],
    selector: str,
    *,
    entry: Mapping | None = None,
) -> tuple[str, str]:
    """(sentence, YAML) of a NAD built by nad.build for `devices`, ("", "") when none can be."""
    if not devices:
        return "", ""
    entry = entry if entry is not None else (_host_device_entry(nad_facts.config) or {})
    ipam, _ = ipam_request_from_config(entry.get("ipam"))
    version = entry.get("cniVersion")
    others = tuple(
        dict.fromkeys(["eth0", *(s.interface for s in ctx.pod.networks if s != selection)])
    )
    request = nad.NadRequest(
        namespace=nad_facts.namespace,
        name=nad_facts.name,
        devices=tuple(d.device_facts(ctx.facts.plugin) for d in devices),
        selector=selector,
        pod_interface=selection.interface,
        other_pod_interfaces=others,
        ipam=ipam or nad.IpamRequest(),
        cni_version=version if version in nad.CNI_VERSIONS else "auto",
        multus_version=ctx.facts.multus_version,
    )
    result = nad.build(request)
    if not result.ok or not result.nads:
        return "", ""
    names = ", ".join(f"{d.node}/{d.name}" for d in devices)
    return f"this NAD selects {names}", result.nads[0].yaml


def _by_event_or_healthy(ctx: _Context) -> Diagnosis:
    pod = ctx.pod
    if ctx.failure is not None and not _running(pod):
        for text, code, title, explanation in _EVENT_RULES:
            if ctx.says(text):
                return ctx.verdict(code, title, explanation, fix=Fix(_EVENT_FIXES[code]))
        return ctx.verdict(
            "UNKNOWN_FAILURE",
            "The pod's sandbox failed for a reason NICPortal does not know",
            "The kubelet reports a sandbox failure whose message matches none of the known "
            "host-device and Multus failures; read the Event below.",
            fix=Fix(
                "Read the plugin's message; `kubectl describe pod` and the Multus logs on the "
                "node have the rest."
            ),
        )
    attachments = ", ".join(_attachment(s) for s in pod.networks) or "no Multus attachment"
    if _running(pod):
        status = [
            Evidence(f"network-status {s.interface}", f"{s.name} MAC {s.mac or '-'}")
            for s in pod.network_status
            if not s.default
        ]
        return ctx.verdict(
            "HEALTHY",
            f"Pod {pod.key} is running with its networks",
            f"The pod runs on {pod.node or 'its node'} with {attachments}.",
            evidence=status,
            severity=OK,
        )
    if not pod.phase:
        return ctx.verdict(
            "HEALTHY",
            "Nothing in the NADs or the inventory stops this pod",
            f"Every attachment ({attachments}) points at a NAD that exists and at a device the "
            "node can hand to a pod.",
            severity=OK,
        )
    if not pod.node:
        explanation = "The pod is not scheduled on a node yet: no network has been tried."
    else:
        explanation = (
            f"The pod is {pod.phase or 'pending'} on {pod.node} and no sandbox failure was "
            "reported yet; the facts show nothing that would stop it. Look again in a few seconds."
        )
    return ctx.verdict(
        "PENDING_NO_EVENT",
        f"Pod {pod.key} is pending without a failure (yet)",
        explanation,
        severity=PENDING,
        fix=Fix("Wait for the kubelet: an Event appears if the sandbox fails."),
    )


def _running(pod: PodFacts) -> bool:
    return pod.phase in ("Running", "Succeeded")


_EVENT_RULES: tuple[tuple[str, str, str, str], ...] = (
    (
        MSG_NAD_NOT_FOUND,
        "NAD_MISSING",
        "A NAD the pod names does not exist",
        "Multus cannot find a NetworkAttachmentDefinition the pod's annotation names.",
    ),
    (
        MSG_NO_SELECTOR,
        "NO_SELECTOR",
        "host-device got no device to select",
        "The NAD has no device, hwaddr, kernelpath or pciBusID, and no device plugin passed a "
        "deviceID.",
    ),
    (
        MSG_NO_NETDEV,
        "PCI_WITHOUT_NETDEV",
        "The selected PCI function has no network interface",
        "The PCI function is bound to a userspace driver or to none, or it is not a NIC.",
    ),
    (
        MSG_EEXIST,
        "EEXIST_COLLISION",
        "A link of that name already exists in the pod (file exists)",
        "host-device before v1.5.0 moves the link into the pod under its host name; the pod "
        "already had a link of that name.",
    ),
    (
        MSG_LINK_NOT_FOUND,
        "DEVICE_ABSENT",
        "The selected device is not on the node",
        "host-device found no matching link on the node: wrong node, already in another pod, "
        "renamed, or stranded. The node is not in the inventory, so NICPortal cannot tell which.",
    ),
)

_EVENT_FIXES = {
    "NAD_MISSING": "Create the NAD, or correct the name or namespace in the annotation.",
    "NO_SELECTOR": 'Add one of "device", "hwaddr", "kernelpath" or "pciBusID" to the NAD.',
    "PCI_WITHOUT_NETDEV": "Bind a kernel network driver to the PCI function.",
    "EEXIST_COLLISION": "Select the device by hwaddr or pciBusID, or upgrade the CNI plugins to "
    "v1.5.0 or newer.",
    "DEVICE_ABSENT": "Check the node's interfaces (`ip -br link`) and the stranded NICs page.",
}


# --- stranded NICs -------------------------------------------------------------------------------


def recovery_commands(
    *,
    name: str,
    original_name: str,
    orphan: bool = False,
    mac: str = "",
    pci_address: str = "",
    driver: str = "",
    has_netdev: bool = True,
) -> tuple[str, ...]:
    """What an operator runs on the node to give a stranded NIC back to the host. NICPortal
    never runs them: it never changes a node.

    - orphan (back on the host as netN, original name in the alias): a link must be down to be
      renamed.
    - vanished with a MAC: find the named network namespace holding it (containerd's cni-*
      namespaces are listed by `ip netns`), rename it there first (the host may already have a
      link named like the pod interface), then move it to PID 1's namespace, the host's.
    - a PCI function without netdev: clear a driver override (vfio-pci) and probe the kernel
      driver again, which creates a new netdev.
    """
    q = shlex.quote
    if orphan:
        return (
            f"ip link set dev {q(name)} down",
            f"ip link set dev {q(name)} name {q(original_name)}",
        )
    commands: list[str] = []
    if mac and has_netdev:
        needle = q(mac.lower())
        commands += [
            "NS=$(for ns in $(ip netns list | cut -d' ' -f1); do "
            f'ip -n "$ns" -br link | grep -qi {needle} && echo "$ns"; done | head -n1); echo "$NS"',
            f"IF=$(ip -n \"$NS\" -br link | grep -i {needle} | cut -d' ' -f1 | cut -d@ -f1); "
            'echo "$IF"',
            'ip -n "$NS" link set dev "$IF" down',
            f'ip -n "$NS" link set dev "$IF" name {q(original_name)}',
            f'ip -n "$NS" link set dev {q(original_name)} netns 1',
        ]
    if pci_address:
        bdf = q(pci_address)
        if commands:
            commands.append(f"# no namespace has it: probe the driver of PCI {pci_address} again")
        if driver:
            commands.append(f"echo {bdf} > /sys/bus/pci/drivers/{q(driver)}/unbind")
        commands += [
            f"echo > /sys/bus/pci/devices/{bdf}/driver_override",
            f"echo {bdf} > /sys/bus/pci/drivers_probe",
            f"ls /sys/bus/pci/devices/{bdf}/net/",
        ]
    elif commands:
        commands.append(
            "# no namespace has it: a virtual link (veth, macvlan) died with its namespace and "
            "must be created again; a physical NIC always returns to the host"
        )
    return tuple(commands)
