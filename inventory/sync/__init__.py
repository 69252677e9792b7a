"""Apply what the agents and the Kubernetes API say to the database, split by what is written:

- `snapshot`: an agent's snapshot -> the node's Interface rows (facts, presence);
- `contact`: an agent's answer or silence -> the Node's health (contact time, stale, error);
- `listing`: the cluster listing -> Node, NetworkAttachment and PodAttachment rows;
- `verdicts`: the ownership verdicts of a node's interfaces and their history;
- `lint`: the stored findings of the cluster's NADs.

Rules that everything here keeps:
- one transaction per node (a snapshot) or per cluster listing, so a reader never sees half a node;
- nothing is written when nothing changed: agent facts are compared by digest, verdicts by
  (state, reason, holder), cluster objects field by field. A warm sweep writes zero rows;
- interfaces are never deleted because a poll failed or a link vanished: they become
  `present=False` (then `pod` or `missing`), or `unknown` when their agent stops answering;
- every ownership change (state or holder) appends a HistoryEntry in the same transaction.

Concurrency: two writers for one node (a beat sweep and a hint-triggered poll) are serialised by
the per-node lock in tasks.py; inside, the node row is locked (SELECT ... FOR UPDATE on
PostgreSQL) so that even an unlocked caller cannot interleave two snapshots of one node.
"""
