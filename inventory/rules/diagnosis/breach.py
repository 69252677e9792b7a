"""A pod on a NIC another team reserved: running, it is a reservation breach (host-device moved
the NIC, nothing failed, and yet the pod holds what it should not); planned, it would be one.
Whose a pod is, is `rules/teams.py`'s rule, the same the ownership verdicts use."""

from __future__ import annotations

from inventory.rules import teams
from inventory.rules.diagnosis.context import Context, attachment, describe, matches
from inventory.rules.diagnosis.facts import Diagnosis, Evidence, Fix, HostInterface, NadFacts
from inventory.rules.multus import NetworkSelection
from inventory.rules.nad.names import normalize_mac
from inventory.rules.states import OwnershipState


def running_breach(ctx: Context) -> Diagnosis | None:
    """A running pod holding, through Multus, a NIC reserved by a team it does not belong to."""
    pod = ctx.pod
    if pod.phase not in ("Running", "Succeeded") or not pod.node:
        return None
    for status in pod.network_status:
        if status.default or not (status.mac or status.pci_address):
            continue
        namespace, _, name = status.name.partition("/")
        nad_key = status.name if name else f"{pod.namespace}/{namespace}"
        device = _held_device(ctx, status.mac, status.pci_address)
        if device is None or not device.reserved_team:
            continue
        nad_facts = ctx.facts.nads.get(nad_key)
        why = teams.breach(
            reserved_team=device.reserved_team,
            namespace=pod.namespace,
            pod=pod.name,
            nad=nad_key,
            namespace_teams=ctx.facts.namespace_teams,
            nad_team=nad_facts.team if nad_facts else "",
        )
        if not why:
            continue
        selection = next((s for s in pod.networks if s.nad_key == nad_key), None)
        return ctx.verdict(
            "RESERVATION_BREACH",
            f"Pod {pod.key} holds {device.node}/{device.name}, reserved by team "
            f"{device.reserved_team}",
            f"The pod runs, and host-device moved {device.node}/{device.name} into it as "
            f"{status.interface or 'a pod interface'}: nothing failed, but the NIC is {why}.",
            selection=selection,
            evidence=[
                Evidence(f"network-status {status.interface}", f"{status.name} MAC {status.mac}"),
                Evidence("Device on the node", describe(device)),
            ],
            fix=_fix(pod.namespace, device.reserved_team, deleting=f"pod {pod.key}"),
        )
    return None


def planned_breach(
    ctx: Context, selection: NetworkSelection, nad_facts: NadFacts, device: HostInterface
) -> Diagnosis | None:
    """A planned pod (not created) whose attachment selects a NIC another team reserved."""
    if ctx.pod.phase or not device.reserved_team or device.state != OwnershipState.RESERVED:
        return None
    why = teams.breach(
        reserved_team=device.reserved_team,
        namespace=ctx.pod.namespace,
        pod=ctx.pod.name,
        nad=nad_facts.key,
        namespace_teams=ctx.facts.namespace_teams,
        nad_team=nad_facts.team,
    )
    if not why:
        return None
    return ctx.verdict(
        "WOULD_BREACH_RESERVATION",
        f"{device.node}/{device.name} is reserved by team {device.reserved_team}",
        f"Attachment {attachment(selection)} selects {device.node}/{device.name}: host-device "
        f"would move it into the pod, and it would be {why}.",
        selection=selection,
        evidence=[Evidence("NAD config", nad_facts.config), Evidence("Device", describe(device))],
        fix=_fix(ctx.pod.namespace, device.reserved_team, deleting=""),
    )


def _held_device(ctx: Context, mac: str, pci_address: str) -> HostInterface | None:
    wanted = normalize_mac(mac) if mac else None
    for interface in ctx.facts.interfaces_by_node.get(ctx.pod.node, ()):
        if wanted and matches("hwaddr", wanted, interface):
            return interface
        if pci_address and matches("pciBusID", pci_address, interface):
            return interface
    return None


def _fix(namespace: str, team: str, *, deleting: str) -> Fix:
    """`deleting`: the running pod to delete ("" for a planned one)."""
    point = "Point the pod's NAD at a free NIC"
    if deleting:
        point = f"Delete {deleting} (host-device gives the NIC back to the host), or p" + point[1:]
    return Fix(
        f"{point}; or ask team {team} to release the reservation; or, if namespace {namespace} "
        f"is team {team}'s, have staff say so: `manage.py createteam {team} --namespace "
        f"{namespace}`."
    )
