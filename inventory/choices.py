"""Every status in NICPortal, as TextChoices. The ownership states are the contract in
docs/ARCHITECTURE.md ("Ownership states")."""

from django.db import models


class OwnershipState(models.TextChoices):
    SYSTEM = "system", "system"
    CNI = "cni", "primary CNI"
    ENSLAVED = "enslaved", "enslaved"
    VIRTUAL = "virtual", "virtual"
    USERSPACE = "userspace", "userspace (DPDK)"
    POD = "pod", "in a pod"
    RESERVED = "reserved", "reserved"
    FREE = "free", "free"
    MISSING = "missing", "missing"
    UNKNOWN = "unknown", "unknown"


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
