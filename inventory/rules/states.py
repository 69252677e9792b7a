"""The ownership states: the verdict vocabulary of the pure rules (docs/ARCHITECTURE.md,
"Ownership states"). A plain enum so the rules need no Django; `inventory.choices` maps it onto
the model's TextChoices with the labels people read."""

from enum import StrEnum


class OwnershipState(StrEnum):
    SYSTEM = "system"
    CNI = "cni"
    ENSLAVED = "enslaved"
    VIRTUAL = "virtual"
    USERSPACE = "userspace"
    POD = "pod"
    RESERVED = "reserved"
    FREE = "free"
    MISSING = "missing"
    UNKNOWN = "unknown"
