"""Stranded NICs: the commands an operator runs on the node to give a NIC back its name or bring
it back from a dead pod's namespace. The portal never changes a node."""

from __future__ import annotations

import shlex


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
