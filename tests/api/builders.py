"""Rows for the reservation and API tests: a cluster, nodes with free NICs, teams and people.

(Meant for tests/factories.py once it exists; kept here so the API work does not race the UI
work creating that file.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth.models import Group, User
from django.utils import timezone
from knox.models import AuthToken

from inventory.choices import IdentityKind, OwnershipState
from inventory.models import Cluster, Interface, Node


def make_cluster(name: str | None = None) -> Cluster:
    cluster, _ = Cluster.objects.get_or_create(name=name or settings.CLUSTER_NAME)
    return cluster


def make_node(name: str = "node-a", *, cluster: Cluster | None = None, **fields) -> Node:
    return Node.objects.create(
        cluster=cluster or make_cluster(),
        name=name,
        ready=True,
        stale=False,
        internal_ips=["10.0.0.1"],
        collected_at=timezone.now(),
        **fields,
    )


_pci_counter = iter(range(1, 10_000))


def make_free_interface(node: Node, name: str = "ens1f0", **fields) -> Interface:
    """A physical NIC with no address and no master: the ownership engine calls it free."""
    pci = fields.pop("pci_address", f"0000:3b:{next(_pci_counter):02x}.0")
    defaults = {
        "identity": pci,
        "identity_kind": IdentityKind.PCI,
        "kind": "physical",
        "driver": "ixgbe",
        "pci_address": pci,
        "mac": "02:00:00:00:00:01",
        "speed_mbps": 10000,
        "operstate": "up",
        "state": OwnershipState.FREE,
        "reason": "physical NIC: no address, no master, not in use",
    }
    defaults.update(fields)
    return Interface.objects.create(node=node, name=name, **defaults)


def make_team(name: str) -> Group:
    return Group.objects.get_or_create(name=name)[0]


def make_user(username: str, *teams: Group, is_staff: bool = False) -> User:
    # No password: hashing one costs ~0.3 s; tests log in with force_login or a token.
    user = User.objects.create_user(username=username)
    user.is_staff = is_staff
    user.save(update_fields=["is_staff"])
    for team in teams:
        user.groups.add(team)
    return user


def token_for(user: User) -> str:
    return AuthToken.objects.create(user=user, expiry=None)[1]


def in_days(days: float) -> timezone.datetime:
    return timezone.now() + timedelta(days=days)


@dataclass
class People:
    """The permission cast: `owner` and `mate` in team `team`, `outsider` in `other_team`,
    `staff` in no team."""

    team: Group
    other_team: Group
    owner: User
    mate: User
    outsider: User
    staff: User


def make_people() -> People:
    team = make_team("netlab")
    other_team = make_team("storage")
    return People(
        team=team,
        other_team=other_team,
        owner=make_user("olivia", team),
        mate=make_user("mateo", team),
        outsider=make_user("oscar", other_team),
        staff=make_user("sam", is_staff=True),
    )
