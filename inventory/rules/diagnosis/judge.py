"""`diagnose()`: the order of the rules (the first that speaks decides), the pod-level rules
(duplicate interface names, unreadable annotation) and the NAD-level ones (missing, invalid,
selecting no device)."""

from __future__ import annotations

import difflib
import json
from collections.abc import Mapping, Sequence

from inventory.rules import nad
from inventory.rules.diagnosis.breach import running_breach
from inventory.rules.diagnosis.context import (
    Context,
    attachment,
    free_interfaces,
    host_device_entry,
    offer_nad,
)
from inventory.rules.diagnosis.devices import (
    judge_device,
)
from inventory.rules.diagnosis.events import (
    by_event_or_healthy,
)
from inventory.rules.diagnosis.facts import (
    CONFIG_BROKEN,
    FAILED_NETWORK,
    MSG_NO_SELECTOR,
    SANDBOX_FAILURE_REASON,
    Diagnosis,
    DiagnosisFacts,
    EventFacts,
    Evidence,
    Fix,
    NadFacts,
    PodFacts,
)
from inventory.rules.multus import NetworkSelection
from inventory.rules.nad.facts import PRIMARY_POD_INTERFACE


def diagnose(facts: DiagnosisFacts) -> Diagnosis:
    pod = facts.pod
    failure = newest_sandbox_failure(pod.events)
    match = FAILED_NETWORK.search(failure.message) if failure else None
    ctx = Context(facts, failure, match["network"] if match else "")

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
    return running_breach(ctx) or by_event_or_healthy(ctx)


def newest_sandbox_failure(events: Sequence[EventFacts]) -> EventFacts | None:
    failures = [e for e in events if e.reason == SANDBOX_FAILURE_REASON]
    if not failures:
        return None
    # Events without a timestamp sort first: the newest stamped one wins, else the last listed.
    return sorted(failures, key=lambda e: (e.last_seen is not None, e.last_seen or 0))[-1]


def _judging_order(ctx: Context) -> list[NetworkSelection]:
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


def _duplicate_interface(ctx: Context) -> Diagnosis | None:
    seen: dict[str, NetworkSelection] = {}
    for selection in ctx.pod.networks:
        name = selection.interface
        if name in (PRIMARY_POD_INTERFACE, "lo"):
            first_text = "the pod's own " + (
                f"{PRIMARY_POD_INTERFACE} (made by the primary CNI)"
                if name == PRIMARY_POD_INTERFACE
                else "loopback"
            )
        elif name in seen:
            first_text = f"attachment {attachment(seen[name])}"
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
            f"Attachment {attachment(selection)} asks for pod interface {name}{defaulted}, "
            f"which {first_text} already uses. An interface name must be unique within the pod: "
            "Multus refuses the second one (`interface name … already exists`) or host-device's "
            "rename fails with `file exists`.",
            selection=selection,
            evidence=[
                Evidence("Networks annotation", ", ".join(attachment(s) for s in ctx.pod.networks))
            ],
            fix=Fix(
                "Give every attachment its own interface name in the annotation, e.g. "
                + ", ".join(f"{s.nad_key}@net{i}" for i, s in enumerate(ctx.pod.networks, start=1))
                + "."
            ),
        )
    return None


def _judge_selection(ctx: Context, selection: NetworkSelection) -> Diagnosis | None:
    if _attached(ctx.pod, selection):
        return None  # Multus reported it attached: this one works
    nad_facts = ctx.facts.nads.get(selection.nad_key)
    if nad_facts is None or not nad_facts.found:
        return _nad_missing(ctx, selection)
    errors = [f for f in nad_facts.findings if f.severity == nad.ERROR]
    broken = [f for f in errors if f.code in CONFIG_BROKEN]
    if any(f.code == "NOT_HOST_DEVICE" for f in nad_facts.findings):
        return None  # another plugin: not ours to judge
    if broken:
        return ctx.verdict(
            "NAD_INVALID",
            f"NAD {nad_facts.key} is invalid",
            f"The NetworkAttachmentDefinition {nad_facts.key} that attachment "
            f"{attachment(selection)} uses cannot work: " + " ".join(f.message for f in broken),
            selection=selection,
            evidence=[Evidence("NAD config", nad_facts.config)],
            fix=Fix(" ".join(f.fix for f in broken if f.fix) or "Fix the NAD's spec.config."),
        )
    entry = host_device_entry(nad_facts.config)
    if entry is None:
        return None
    selector, value = _winning_selector(entry)
    if selector is None:
        return _no_selector(ctx, selection, nad_facts)
    return judge_device(ctx, selection, nad_facts, entry, selector, value)


def _attached(pod: PodFacts, selection: NetworkSelection) -> bool:
    for status in pod.network_status:
        namespace, _, name = status.name.partition("/")
        key = status.name if name else f"{pod.namespace}/{namespace}"
        if key == selection.nad_key and status.interface in ("", selection.interface):
            return True
    return False


def _nad_missing(ctx: Context, selection: NetworkSelection) -> Diagnosis:
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


def _winning_selector(entry: Mapping) -> tuple[str | None, str]:
    for selector in nad.SELECTORS:  # host-device's own precedence
        value = entry.get(selector)
        if isinstance(value, str) and value:
            return selector, value
    return None, ""


def _no_selector(ctx: Context, selection: NetworkSelection, nad_facts: NadFacts) -> Diagnosis:
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
    build = offer_nad(ctx, selection, nad_facts, free_interfaces(ctx)[:1], "auto")
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
