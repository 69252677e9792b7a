"""Fleet-wide reviews in O(classes) instead of O(nodes) (pure, no I/O).

A pod that may land on any of 5,000 nodes, or a NAD with no node list, is judged against the
device its selector picks on every node. Most of those devices are alike: the same state, the
same driver, the same reservation, the same host-device plugin. The read side
(read/admission.py, `device_classes`) groups the matching devices by every fact the rules branch
on and returns, per group, the full facts of its first NAMED_NODES members (in node-name order)
and the names of all its members. The rules then run on those first members only and count the
rest:

- every member of a group yields the same finding codes (the rules read nothing else of a
  device than what the group is keyed on, apart from text: the node, the name, the MAC, the PCI
  address, the reason and holder words);
- a message names at most NAMED_NODES nodes per code, the first ones in node order, then "and N
  more": the first NAMED_NODES nodes of any code are each among the first NAMED_NODES of their
  own group (the group's earlier members yield that code too), so they are among the members
  whose facts were read.

So the decision, its messages and its warnings are exactly those of the exhaustive path
(tests/integration/test_admission_fleet.py compares both on random fleets). Should two members
of one group still yield different codes (a fact the grouping missed), `ClassMismatch` makes
the caller take the exhaustive path.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence

from inventory.rules.nad.fleet import ClassMismatch, DeviceClass

__all__ = ["ClassMismatch", "DeviceClass", "add_unread", "check_alike"]


def check_alike(signatures: Iterable[tuple]) -> tuple:
    """The one signature every read member of a class has; ClassMismatch when they differ."""
    distinct = set(signatures)
    if len(distinct) != 1:
        raise ClassMismatch(f"{len(distinct)} different outcomes in one device class")
    return distinct.pop()


def add_unread(extra: Counter[str], codes: Sequence[str], times: int) -> None:
    """Count `codes` (one member's) once more for each of `times` unread members."""
    if times > 0:
        for code in codes:
            extra[code] += times
