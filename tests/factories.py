"""Small factory functions for test data. Each makes one row with sensible defaults; keyword
arguments override any field. Shared by the view, browser and API tests: add new functions at
the end of the file."""

from __future__ import annotations

import functools
import itertools
from datetime import timedelta
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group, User
from django.utils import timezone

from inventory.choices import AttachmentStatus, HistoryKind, IdentityKind, OwnershipState
from inventory.models import (
    Cluster,
    HistoryEntry,
    Interface,
    Node,
    PodAttachment,
    Reservation,
)

_sequence = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_cluster(**fields: Any) -> Cluster:
    fields.setdefault("name", f"cluster-{next(_sequence)}")
    return Cluster.objects.create(**fields)


def make_node(cluster: Cluster | None = None, **fields: Any) -> Node:
    n = next(_sequence)
    fields.setdefault("name", f"node-{n}")
    fields.setdefault("ready", True)
    fields.setdefault("last_contact_at", timezone.now())
    fields.setdefault("internal_ips", [f"10.0.0.{n % 250 + 1}"])
    return Node.objects.create(cluster=cluster or make_cluster(), **fields)


def make_interface(node: Node | None = None, **fields: Any) -> Interface:
    n = next(_sequence)
    mac = f"02:00:00:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"
    fields.setdefault("name", f"eth{n}")
    fields.setdefault("mac", mac)
    fields.setdefault("identity", fields.get("pci_address") or mac)
    fields.setdefault(
        "identity_kind", IdentityKind.PCI if fields.get("pci_address") else IdentityKind.MAC
    )
    fields.setdefault("driver", "veth")
    fields.setdefault("speed_mbps", 10000)
    fields.setdefault("state", OwnershipState.FREE)
    fields.setdefault("reason", "physical link on the host, used by nothing")
    return Interface.objects.create(node=node or make_node(), **fields)


def make_team(name: str | None = None) -> Group:
    return Group.objects.create(name=name or f"team-{next(_sequence)}")


@functools.cache
def _hashed_password() -> str:
    # Hashing is deliberately slow; tests make many users with the same password.
    return make_password(PASSWORD)


def make_user(username: str | None = None, *, teams: list[Group] = (), staff: bool = False) -> User:
    user = User.objects.create(
        username=username or f"user-{next(_sequence)}", password=_hashed_password(), is_staff=staff
    )
    user.groups.set(teams)
    return user


def make_reservation(
    interface: Interface, team: Group, user: User | None = None, **fields: Any
) -> Reservation:
    fields.setdefault("purpose", "testing")
    fields.setdefault("expires_at", timezone.now() + timedelta(days=7))
    return Reservation.objects.create(
        interface=interface, team=team, created_by=user or make_user(teams=[team]), **fields
    )


def make_history(interface: Interface | None = None, **fields: Any) -> HistoryEntry:
    fields.setdefault("kind", HistoryKind.OWNERSHIP)
    fields.setdefault("message", "ownership changed")
    if interface is not None:
        fields.setdefault("node", interface.node)
    return HistoryEntry.objects.create(interface=interface, **fields)


def make_pod_attachment(interface: Interface, **fields: Any) -> PodAttachment:
    n = next(_sequence)
    fields.setdefault("namespace", "default")
    fields.setdefault("pod_name", f"pod-{n}")
    fields.setdefault("nad_namespace", "default")
    fields.setdefault("nad_name", "hostdev")
    fields.setdefault("pod_interface", "net1")
    fields.setdefault("status", AttachmentStatus.ATTACHED)
    return PodAttachment.objects.create(
        cluster=interface.node.cluster, node=interface.node, interface=interface, **fields
    )


def move_into_pod(interface: Interface, pod: str = "default/web-0") -> Interface:
    """What a sync does when host-device moves the NIC into a pod: the row changes and a
    history entry records it."""
    old = interface.state
    interface.state = OwnershipState.POD
    interface.holder = pod
    interface.reason = f"moved into pod {pod} by host-device"
    interface.has_netdev = False
    interface.state_changed_at = timezone.now()
    interface.save()
    make_history(interface, old_state=old, new_state=OwnershipState.POD, message=interface.reason)
    return interface
