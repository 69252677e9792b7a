"""Query pieces the read side, the pages and the API share, over the models: the agents'
cached contact times, the interfaces host-device can take, SR-IOV roles in SQL, and the active
reservation prefetched with each interface."""

from __future__ import annotations

from datetime import datetime

from django.core.cache import cache
from django.db import models
from django.db.models import Q

from inventory.models import Reservation, contact_cache_key
from inventory.rules import sriov


def cached_contacts(node_ids: list[int]) -> dict[int, datetime]:
    """The agents' contact times the sweep keeps in the cache, by node id; {} when the cache
    cannot answer (a page then shows the rows' last_contact_at instead of failing)."""
    try:
        found = cache.get_many([contact_cache_key(pk) for pk in node_ids])
    except Exception:  # noqa: BLE001 - any cache backend error means "nothing cached"
        return {}
    return {pk: found[contact_cache_key(pk)] for pk in node_ids if contact_cache_key(pk) in found}


def host_device_target_q() -> Q:
    """Interfaces host-device can take when they are free: a netdev on the node, or a function
    bound to vfio-pci/uio (a VF host-device takes by pciBusID, moving nothing). Whether they
    are free is the ownership verdict's (state)."""
    return Q(has_netdev=True) | Q(driver__in=sriov.USERSPACE_DRIVERS)


def sriov_role_q(role: str) -> Q:
    """The interfaces of one SR-IOV role in SQL, as Interface.sriov_role says it in Python:
    "vf" (a virtual function), "pf" (SR-IOV capable), "none" (neither). For any query that
    selects by role: the API's ?sriov=, a capacity request's constraint."""
    vf = ~Q(pf_pci_address="")
    pf = Q(pf_pci_address="", sriov_total_vfs__gt=0)
    if role == sriov.VF:
        return vf
    if role == sriov.PF:
        return pf
    if role == "none":
        return ~(vf | pf)
    raise ValueError(f"unknown SR-IOV role {role!r}: pf, vf or none")


def active_reservations() -> models.Prefetch:
    """Prefetch of each interface's unreleased reservation (with its team) as
    `interface.active_reservations`: the lists show who holds a NIC without a query per row."""
    return models.Prefetch(
        "reservations",
        queryset=Reservation.objects.filter(released_at__isnull=True).select_related("team"),
        to_attr="active_reservations",
    )
