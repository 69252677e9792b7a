"""Why is this pod stuck in ContainerCreating? The pure diagnosis rules: facts in, one verdict out.

No I/O, no ORM, no Kubernetes calls. `services/diagnosis.py` and `read/facts.py` gather the
facts (the pod, its Events, the NADs it names, the inventory of its node and of the others) into
the dataclasses of `facts.py`; `diagnose()` picks the first rule that explains the failure and
says, in words a person reads, what happened, the evidence, and the fix (with a corrected NAD
when one can be built).

Order of the rules (the first that speaks decides):

1. the pod does not exist; its `networks` annotation cannot be read;
2. two attachments ask for one pod interface name (Multus refuses, or the rename collides);
3. per attachment, in annotation order: the NAD is missing or invalid; it selects no device
   (or relies on a device plugin that gave none); the device it selects collides with a pod
   interface (`file exists`, host-device < 1.5.0); it is the node's primary NIC; it is a PCI
   function without netdev; it is absent from the node (renamed orphan, held by a pod, stranded,
   on another node, nowhere);
   a planned pod whose device is another team's reserved NIC (it would be a breach);
4. a running pod holding a NIC another team reserved (a reservation breach: nothing failed);
5. whatever the Event says that the facts did not explain (by its message);
6. nothing wrong: healthy, or pending without an Event yet.

The Event is the plugin's own word: when it names the failing network, that attachment is judged
first, and its message decides between two explanations the inventory alone cannot tell apart.
Stranded NICs (`recovery_commands`) are here too: the commands an operator runs on the node.

Modules: `facts` (in and out), `judge` (the order; pod- and NAD-level rules), `devices` (the
selected device against the inventory), `breach` (another team's reserved NIC), `events` (the
Event's own words), `context` (what the rules share), `recovery` (stranded NICs).
"""

from inventory.rules.diagnosis.facts import (
    ERROR,
    MSG_EEXIST,
    MSG_IFNAME_EXISTS,
    MSG_LINK_NOT_FOUND,
    MSG_NAD_NOT_FOUND,
    MSG_NO_NETDEV,
    MSG_NO_SELECTOR,
    OK,
    PENDING,
    SANDBOX_FAILURE_REASON,
    Diagnosis,
    DiagnosisFacts,
    EventFacts,
    Evidence,
    Fix,
    HostInterface,
    NadFacts,
    PodFacts,
)
from inventory.rules.diagnosis.judge import diagnose
from inventory.rules.diagnosis.recovery import recovery_commands

__all__ = [
    "ERROR",
    "MSG_EEXIST",
    "MSG_IFNAME_EXISTS",
    "MSG_LINK_NOT_FOUND",
    "MSG_NAD_NOT_FOUND",
    "MSG_NO_NETDEV",
    "MSG_NO_SELECTOR",
    "OK",
    "PENDING",
    "SANDBOX_FAILURE_REASON",
    "Diagnosis",
    "DiagnosisFacts",
    "EventFacts",
    "Evidence",
    "Fix",
    "HostInterface",
    "NadFacts",
    "PodFacts",
    "diagnose",
    "recovery_commands",
]
