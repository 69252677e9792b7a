"""Every status in NICPortal, as TextChoices. The ownership states are the pure rules' own
vocabulary (`inventory.rules.states`, the contract in docs/ARCHITECTURE.md "Ownership states"),
given here the labels people read; a unit test keeps the two member for member alike."""

from django.db import models

from inventory.rules.states import OwnershipState as State


class OwnershipState(models.TextChoices):
    SYSTEM = State.SYSTEM.value, "system"
    CNI = State.CNI.value, "primary CNI"
    ENSLAVED = State.ENSLAVED.value, "enslaved"
    VIRTUAL = State.VIRTUAL.value, "virtual"
    USERSPACE = State.USERSPACE.value, "userspace (DPDK)"
    POD = State.POD.value, "in a pod"
    RESERVED = State.RESERVED.value, "reserved"
    FREE = State.FREE.value, "free"
    MISSING = State.MISSING.value, "missing"
    UNKNOWN = State.UNKNOWN.value, "unknown"


class IdentityKind(models.TextChoices):
    PCI = "pci", "PCI address"
    PERMANENT_MAC = "perm_mac", "permanent MAC"
    MAC = "mac", "MAC"
    NAME = "name", "name"  # links with no MAC at all (loopback, tun): the name is all there is


class AttachmentStatus(models.TextChoices):
    PENDING = "pending", "pending"
    ATTACHED = "attached", "attached"
    FAILED = "failed", "failed"
    GONE = "gone", "gone"


class NadOrigin(models.TextChoices):
    CLUSTER = "cluster", "found in the cluster"
    PORTAL = "portal", "applied by the portal"


class HistoryKind(models.TextChoices):
    OWNERSHIP = "ownership", "ownership change"
    RESERVE = "reserve", "reserved"
    EXTEND = "extend", "extended"
    RELEASE = "release", "released"
    EXPIRE = "expire", "expired"
    NAD_APPLY = "nad_apply", "NAD applied"
    AGENT = "agent", "agent health"
    BREACH = "breach", "reservation breach"
    REQUEST = "request", "reservation request"
    TEAM = "team", "team namespaces"


class RequestOutcome(models.TextChoices):
    GRANTED = "granted", "granted"
    REFUSED = "refused", "refused"
