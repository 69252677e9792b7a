"""The inventory: clusters, nodes, their interfaces and who owns each, and the history of it.

Rows are never deleted because a poll failed: a node whose agent stops answering is marked stale
and its interfaces become `unknown` with their last facts kept (see sync/contact.py).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from inventory.choices import (
    AttachmentStatus,
    HistoryKind,
    IdentityKind,
    NadOrigin,
    OwnershipState,
    RequestOutcome,
)
from inventory.rules import sriov
from inventory.rules import teams as team_rules


class Cluster(models.Model):
    """A cluster the portal watches: the registry entry (how to reach its API, which master key
    its agents' keys derive from) and its sweep bookkeeping.

    Credentials are never stored here: an entry names where they are, a kubeconfig file (a
    mounted Secret, say), a Secret in the portal's own cluster, or the pod's service account
    (services/clusters.py). The cluster named NICPORTAL_CLUSTER_NAME with none of those set is
    the default cluster: it is reached as the settings say (KUBECONFIG, NICPORTAL_IN_CLUSTER)."""

    # Part of every agent key of the cluster (nodeagent/auth.py): the name the agents are given.
    name = models.CharField(
        max_length=100,
        unique=True,
        validators=[
            RegexValidator(
                r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?\Z",
                "Lower-case letters, digits, '-' and '.', starting and ending with a letter or "
                "digit.",
            )
        ],
    )
    api_url = models.CharField(max_length=500, blank=True)
    multus_version = models.CharField(
        max_length=40, blank=True, help_text="Multus version, '' when unknown (MicroK8s: 3.9)."
    )
    last_sweep_at = models.DateTimeField(null=True, blank=True)
    last_sweep_ok_at = models.DateTimeField(null=True, blank=True)
    last_sweep_duration = models.FloatField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    enabled = models.BooleanField(default=True, help_text="Swept on every sweep when true.")
    kubeconfig = models.CharField(
        max_length=500, blank=True, help_text="Path of a kubeconfig file on the portal's hosts."
    )
    kubeconfig_secret = models.CharField(
        max_length=317,
        blank=True,
        help_text="namespace/name of a Secret in the portal's own cluster whose `kubeconfig` key "
        "holds the kubeconfig.",
    )
    context = models.CharField(max_length=253, blank=True, help_text="kubeconfig context.")
    in_cluster = models.BooleanField(
        default=False, help_text="Reach the API with the portal pod's own service account."
    )
    agent_master_key_file = models.CharField(
        max_length=500,
        blank=True,
        help_text="File holding this cluster's agent master key ('' = NICPORTAL_AGENT_MASTER_KEY).",
    )
    agent_master_key_previous_file = models.CharField(
        max_length=500, blank=True, help_text="The previous master key's file, during a rotation."
    )
    # Set when reading the API has failed for longer than NICPORTAL_CLUSTER_STALE_AFTER: the
    # cluster's NICs are `unknown` until a read succeeds again (sync/reach.py).
    unreachable_since = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name

    @property
    def credentials(self) -> str:
        """Where the API credentials come from: "in-cluster", "kubeconfig", "secret", or ""
        (none registered: the settings' for the default cluster, nothing for another)."""
        if self.in_cluster:
            return "in-cluster"
        if self.kubeconfig:
            return "kubeconfig"
        if self.kubeconfig_secret:
            return "secret"
        return ""

    def clean(self) -> None:
        sources = [self.in_cluster, bool(self.kubeconfig), bool(self.kubeconfig_secret)]
        if sum(sources) > 1:
            raise ValidationError(
                "Give one of kubeconfig, kubeconfig_secret and in_cluster, not several."
            )
        if self.kubeconfig_secret:
            namespace, slash, name = self.kubeconfig_secret.partition("/")
            if not slash or not namespace or not name or "/" in name:
                raise ValidationError(
                    {"kubeconfig_secret": "Write it as namespace/name of the Secret."}
                )


class Node(models.Model):
    # The node's JSON documents: what lists and sweeps leave unread (.defer) when they show or
    # poll a node without its facts.
    JSON_FACTS = ("labels", "cni", "findings", "rogue_agents", "internal_ips", "external_ips")

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nodes")
    # Lists order interfaces by node name: this index lets PostgreSQL walk nodes in order
    # instead of sorting the whole fleet for every page (bench/ANALYSIS.md).
    name = models.CharField(max_length=253, db_index=True)
    internal_ips = models.JSONField(default=list, blank=True)
    external_ips = models.JSONField(default=list, blank=True)
    labels = models.JSONField(default=dict, blank=True)
    ready = models.BooleanField(default=False)
    in_cluster = models.BooleanField(
        default=True, help_text="False once the Node object is gone from the API."
    )
    agent_url = models.CharField(max_length=500, blank=True, help_text="From the agent pod.")
    agent_url_override = models.CharField(max_length=500, blank=True)
    agent_version = models.CharField(max_length=40, blank=True)
    agent_etag = models.CharField(max_length=200, blank=True)
    agent_error = models.TextField(blank=True)
    last_contact_at = models.DateTimeField(null=True, blank=True)
    collected_at = models.DateTimeField(null=True, blank=True)
    stale = models.BooleanField(default=False, db_index=True)
    # CNI facts reported by the agent: bin dirs, host-device presence and supportedVersions.
    cni = models.JSONField(default=dict, blank=True)
    # Pods on this node that look like an agent but are not the agent DaemonSet's (never
    # contacted): [{"pod": "ns/name", "pod_ip": ..., "reason": ...}], from the last listing.
    rogue_agents = models.JSONField(default=list, blank=True)
    # Where the agent's snapshot contradicts the Kubernetes API's view of this node
    # (rules/crosscheck.py): [{"code", "severity", "message"}], from the last judgement.
    findings = models.JSONField(default=list, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cluster", "name"], name="node_unique_per_cluster")
        ]
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_agent_url(self) -> str:
        return self.agent_url_override or self.agent_url

    @property
    def last_contact(self):
        """The agent's last useful answer. Kept in the cache, written on every poll, so that a
        warm sweep writes no rows; `last_contact_at` in the row is only updated when the node's
        health or facts change (and is the fallback after a cache loss)."""
        return cache.get(contact_cache_key(self.pk)) or self.last_contact_at


def contact_cache_key(node_id: int) -> str:
    return f"agent-contact:{node_id}"


# The speed the lists sort by: an unknown speed sorts as the lowest, so that "fastest first"
# starts with real speeds. NOT NULL, so a keyset cursor can compare it (a NULL compares as
# unknown and would drop rows), and the same expression as the index that serves the sort.
SPEED_SORT_KEY = Coalesce("speed_mbps", Value(-1))


class Interface(models.Model):
    # No separate index on node_id: the unique (node, identity) constraint leads with it.
    node = models.ForeignKey(
        Node, on_delete=models.CASCADE, related_name="interfaces", db_index=False
    )
    # A copy of node.name (Kubernetes never renames a Node, and an interface never changes
    # node): every list sorts by node name, and only a column of this table lets one index
    # serve "state=free, by node name" or a deep page without walking the join.
    node_name = models.CharField(max_length=253, editable=False)
    # Identity across snapshots: PCI address, else permanent MAC, else MAC. Names change
    # (host-device renames devices into pods and back); identities do not.
    identity = models.CharField(max_length=64)
    identity_kind = models.CharField(max_length=10, choices=IdentityKind.choices)

    name = models.CharField(max_length=64)
    ifindex = models.IntegerField(null=True, blank=True)
    altnames = models.JSONField(default=list, blank=True)
    alias = models.CharField(max_length=256, blank=True)
    mac = models.CharField(max_length=64, blank=True)  # indexed: iface_mac
    permanent_mac = models.CharField(max_length=64, blank=True)
    kind = models.CharField(max_length=32, blank=True)
    driver = models.CharField(max_length=64, blank=True)
    pci_address = models.CharField(max_length=16, blank=True)
    vendor_id = models.CharField(max_length=8, blank=True)
    device_id = models.CharField(max_length=8, blank=True)
    speed_mbps = models.IntegerField(null=True, blank=True)
    mtu = models.IntegerField(null=True, blank=True)
    operstate = models.CharField(max_length=16, blank=True)
    carrier = models.BooleanField(null=True, blank=True)
    numa_node = models.IntegerField(null=True, blank=True)
    sriov_total_vfs = models.IntegerField(null=True, blank=True)
    sriov_num_vfs = models.IntegerField(null=True, blank=True)
    pf = models.CharField(max_length=64, blank=True, help_text="PF (name or PCI) of a VF.")
    # An SR-IOV VF is an Interface like any other NIC (keyed by its PCI address, with or without
    # a netdev); these say whose VF it is: its PF's PCI address (the PF's own row has it as
    # pci_address) and its number under that PF (the N of the PF's virtfnN).
    pf_pci_address = models.CharField(max_length=16, blank=True)
    vf_index = models.IntegerField(null=True, blank=True)
    master = models.CharField(max_length=64, blank=True)
    master_kind = models.CharField(max_length=32, blank=True)
    wireless = models.BooleanField(default=False)
    addresses = models.JSONField(default=list, blank=True)
    default_route_v4 = models.BooleanField(default=False)
    default_route_v6 = models.BooleanField(default=False)
    # False when the netdev is not in the node's namespace (moved into a pod, or bound to
    # vfio/uio: then a PCI function without netdev is still reported).
    has_netdev = models.BooleanField(default=True)
    present = models.BooleanField(default=True)  # absent ones indexed: iface_absent
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    # Hash of the agent facts above: a warm sweep compares digests and writes nothing.
    facts_digest = models.CharField(max_length=64, blank=True)

    state = models.CharField(
        max_length=12, choices=OwnershipState.choices, default=OwnershipState.UNKNOWN
    )
    reason = models.TextField(blank=True)
    holder = models.CharField(max_length=300, blank=True)
    # A host link named netN whose alias holds its original name: returned from a dead pod.
    orphan = models.BooleanField(default=False)
    # "" or why this NIC is a reservation breach: reserved by one team, held by a pod that is
    # not that team's (rules/teams.py says whose a pod is). Judged with the verdict.
    breach = models.TextField(blank=True)
    # The node's Kubernetes addresses this NIC was last seen holding, and "default-route":
    # judged with the verdict, so that a snapshot that hides them cannot free the NIC while the
    # API still lists them (rules/crosscheck.py).
    pinned = models.JSONField(default=list, blank=True)
    state_changed_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node", "identity"], name="interface_identity_per_node")
        ]
        # One index per sort the lists offer (read/pages.py: SORTS), in the same column order,
        # each ending in the primary key: a page, a deep offset or a keyset cursor is a walk of
        # one index, never a sort of the fleet. Their leading columns serve the filters too.
        indexes = [
            models.Index(fields=["node_name", "name", "id"], name="iface_sort_node"),
            models.Index(fields=["name", "node_name", "id"], name="iface_sort_name"),
            models.Index(fields=["state", "node_name", "name", "id"], name="iface_sort_state"),
            models.Index(fields=["driver", "node_name", "name", "id"], name="iface_sort_driver"),
            models.Index(fields=["pci_address", "node_name", "name", "id"], name="iface_sort_pci"),
            models.Index(
                SPEED_SORT_KEY, F("node_name"), F("name"), F("id"), name="iface_sort_speed"
            ),
            models.Index(fields=["state_changed_at", "id"], name="iface_sort_changed"),
            models.Index(fields=["last_seen_at", "id"], name="iface_sort_seen"),
            models.Index(fields=["state", "id"], name="iface_state_id"),
            models.Index(fields=["node", "name"], name="iface_node_name"),
            # Breaches are few: /metrics and the breach filters read them through this index.
            models.Index(fields=["node"], condition=~Q(breach=""), name="iface_breach"),
            # Exact MACs (hwaddr selectors, reverse lookups); no LIKE index: no filter matches
            # a MAC by prefix.
            models.Index(fields=["mac"], name="iface_mac"),
            # Absent NICs are few; a present one costs this index nothing on insert.
            models.Index(
                fields=["node_name", "name", "id"], condition=Q(present=False), name="iface_absent"
            ),
        ]
        ordering = ["node_name", "name", "id"]

    def __str__(self) -> str:
        return f"{self.node_name}/{self.display_name}"

    def save(self, *args, **kwargs) -> None:
        if not self.node_name:
            self.node_name = self.node.name
        super().save(*args, **kwargs)

    def seen_at(self, contact: datetime | None) -> datetime:
        """When the node's agent last reported this NIC. A poll that finds nothing changed
        writes no row (the agent's contact time goes to the cache, see Node.last_contact), so
        `last_seen_at` is the last *change*; every NIC still present was in the snapshot of
        the last contact too. `contact` is its node's `last_contact`."""
        if self.present and contact is not None and contact > self.last_seen_at:
            return contact
        return self.last_seen_at

    @property
    def sriov_role(self) -> str:
        """ "pf" (SR-IOV capable), "vf" (a virtual function), or "" (neither)."""
        return sriov.role(pf_pci_address=self.pf_pci_address, sriov_total_vfs=self.sriov_total_vfs)

    @property
    def host_device_mode(self) -> str:
        """What host-device does with it by pciBusID: rules/sriov.py HOST_DEVICE_MODES."""
        return sriov.host_device_mode(
            pci_address=self.pci_address, driver=self.driver, has_netdev=self.has_netdev
        )

    @property
    def host_device_text(self) -> str:
        return sriov.HOST_DEVICE_MODES.get(self.host_device_mode, "")

    @property
    def display_name(self) -> str:
        """What people call it: its name, else (a function with no netdev ever seen, such as a
        VF bound to vfio-pci) its PCI address."""
        return self.name or self.pci_address or self.identity

    @property
    def address_list(self) -> list[str]:
        """Addresses as people write them: 10.0.0.5/24."""
        return [
            f"{a['address']}/{a['prefixlen']}"
            for a in self.addresses or []
            if isinstance(a, dict) and "address" in a and "prefixlen" in a
        ]


class NetworkAttachment(models.Model):
    """A NetworkAttachmentDefinition seen in the cluster or applied by the portal."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="nads")
    namespace = models.CharField(max_length=63)
    name = models.CharField(max_length=253)
    uid = models.CharField(max_length=64, blank=True)
    config = models.TextField(blank=True, help_text="spec.config, verbatim (a JSON string).")
    resource_name = models.CharField(max_length=253, blank=True)
    annotations = models.JSONField(default=dict, blank=True)
    origin = models.CharField(max_length=10, choices=NadOrigin.choices, default=NadOrigin.CLUSTER)
    in_cluster = models.BooleanField(default=True)
    findings = models.JSONField(default=list, blank=True)
    applied_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    # The team the portal applied it for (the acting team of the apply); None for a NAD found in
    # the cluster. A NAD of that team may hand the team's reserved NICs to pods.
    team = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, related_name="nads"
    )
    first_seen_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "namespace", "name"], name="nad_unique_per_cluster"
            )
        ]
        ordering = ["namespace", "name"]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


class PodAttachment(models.Model):
    """One Multus attachment of a pod: which NAD, which pod interface, which host NIC."""

    cluster = models.ForeignKey(Cluster, on_delete=models.CASCADE, related_name="attachments")
    namespace = models.CharField(max_length=63)
    pod_name = models.CharField(max_length=253)
    pod_uid = models.CharField(max_length=64, blank=True)
    node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    nad_namespace = models.CharField(max_length=63)
    nad_name = models.CharField(max_length=253)
    pod_interface = models.CharField(max_length=64, blank=True)
    mac = models.CharField(max_length=64, blank=True)
    # The host device's PCI address: from the network-status device-info, else the pciBusID of
    # a host-device NAD (a vfio-bound device in a pod has no MAC to be found by).
    pci_address = models.CharField(max_length=16, blank=True)
    interface = models.ForeignKey(
        Interface, null=True, blank=True, on_delete=models.SET_NULL, related_name="attachments"
    )
    status = models.CharField(
        max_length=10, choices=AttachmentStatus.choices, default=AttachmentStatus.PENDING
    )
    error = models.TextField(blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=[
                    "cluster",
                    "namespace",
                    "pod_name",
                    "nad_namespace",
                    "nad_name",
                    "pod_interface",
                ],
                name="attachment_unique",
            )
        ]
        indexes = [models.Index(fields=["status"], name="attachment_status")]
        ordering = ["namespace", "pod_name", "pod_interface"]

    def __str__(self) -> str:
        return f"{self.namespace}/{self.pod_name}:{self.pod_interface}"


class Reservation(models.Model):
    """A team's claim on an interface. At most one active (unreleased) reservation per
    interface, enforced by a partial unique index so that concurrent requests cannot both win."""

    interface = models.ForeignKey(Interface, on_delete=models.CASCADE, related_name="reservations")
    team = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="reservations")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reservations"
    )
    purpose = models.CharField(max_length=500)
    starts_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    released_at = models.DateTimeField(null=True, blank=True)
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="released_reservations",
    )
    release_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["interface"],
                condition=Q(released_at__isnull=True),
                name="one_active_reservation_per_interface",
            ),
            models.CheckConstraint(
                condition=Q(expires_at__gt=models.F("starts_at")),
                name="reservation_expires_after_start",
            ),
        ]
        indexes = [
            models.Index(fields=["released_at", "expires_at"], name="reservation_active"),
            # The active reservations only (released ones are kept forever, as history): the
            # lists' `team` filter and their join to the active reservation stay as cheap
            # with 10,000 released reservations as with none.
            models.Index(
                fields=["team", "interface"],
                condition=Q(released_at__isnull=True),
                name="reservation_active_team",
            ),
        ]
        ordering = ["-starts_at"]

    def __str__(self) -> str:
        return f"{self.interface} for {self.team}"

    @property
    def active(self) -> bool:
        return self.released_at is None


class ReservationRequest(models.Model):
    """An ask for capacity ("two free 25G NICs on one node"), what it was granted or why not.

    Granted: its reservations were made together, all or none (services/capacity.py), and the
    NADs and pod placement that use them are kept as rendered then. Refused: nothing was
    reserved; `explanation` and `steps` say which constraint emptied the set."""

    team = models.ForeignKey(Group, on_delete=models.PROTECT, related_name="reservation_requests")
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="reservation_requests"
    )
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    purpose = models.CharField(max_length=500)
    expires_at = models.DateTimeField()
    count = models.PositiveSmallIntegerField()
    # The constraints as asked (rules/capacity.Constraints' fields).
    constraints = models.JSONField(default=dict, blank=True)
    outcome = models.CharField(max_length=10, choices=RequestOutcome.choices)
    explanation = models.TextField(blank=True)
    # [{"field", "text", "before", "after"}]: the NICs left after each constraint.
    steps = models.JSONField(default=list, blank=True)
    # Refused: [{"id", "nic", "fails": [...]}], the NICs that came closest.
    closest = models.JSONField(default=list, blank=True)
    reservations = models.ManyToManyField(Reservation, blank=True, related_name="requests")
    namespace = models.CharField(max_length=63, blank=True)
    nad_name = models.CharField(max_length=253, blank=True)
    # Granted: [{"namespace", "name", "nodes", "yaml"}] and the pod fragment that uses them.
    nads = models.JSONField(default=list, blank=True)
    pod_snippet = models.TextField(blank=True)
    nad_findings = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"request {self.pk} of {self.team} ({self.outcome})"


class HistoryEntry(models.Model):
    """Append-only record of ownership changes and user actions."""

    at = models.DateTimeField(default=timezone.now, db_index=True)
    kind = models.CharField(max_length=12, choices=HistoryKind.choices)
    # SET_NULL: a virtual link gone for good is dropped from the inventory (sync/snapshot.py),
    # its history stays (the message names it, `node` says where).
    # Indexes (Meta): a sweep appends a history row per changed NIC, so each index here is paid
    # on every verdict change. `interface` is served by history_iface_at (its leading column);
    # actor and team are set on user actions only, so their indexes hold only those rows.
    interface = models.ForeignKey(
        Interface,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="history",
        db_index=False,
    )
    node = models.ForeignKey(
        Node, null=True, blank=True, on_delete=models.CASCADE, related_name="history"
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, db_index=False
    )
    team = models.ForeignKey(
        Group, null=True, blank=True, on_delete=models.SET_NULL, db_index=False
    )
    old_state = models.CharField(max_length=12, blank=True)
    new_state = models.CharField(max_length=12, blank=True)
    message = models.TextField()
    data = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["interface", "-at"], name="history_iface_at"),
            models.Index(fields=["actor"], condition=Q(actor__isnull=False), name="history_actor"),
            models.Index(fields=["team"], condition=Q(team__isnull=False), name="history_team"),
        ]
        verbose_name_plural = "history"

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.kind}: {self.message}"

    def save(self, *args, **kwargs) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):
            raise ValueError("history is append-only")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise ValueError("history is append-only")


class TokenNote(models.Model):
    """What an API token is for ("CI pipeline"), shown on the token page. knox's AuthToken has
    no such field; this row lives and dies with the token (its primary key is the token's)."""

    token = models.OneToOneField(
        "knox.AuthToken", primary_key=True, on_delete=models.CASCADE, related_name="note"
    )
    text = models.CharField(max_length=100, blank=True)

    def __str__(self) -> str:
        return self.text


class AgentNonce(models.Model):
    """A nonce of a signed agent hint, accepted once: kept here only while the cache (where
    inventory.hints remembers nonces) does not answer, until the signature's window ends."""

    node = models.CharField(max_length=253)
    nonce = models.CharField(max_length=64)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["node", "nonce"], name="agent_nonce_once"),
        ]

    def __str__(self) -> str:
        return f"{self.node}:{self.nonce}"


class TeamNamespace(models.Model):
    """A Kubernetes namespace that belongs to a team: a name, or a shell pattern such as `ml-*`.
    Pods in it may take the team's reserved NICs: the admission webhook denies pods from other
    namespaces that ask for them, and a pod from another team's namespace holding one is a
    reservation breach. The team's members may apply NADs through NICPortal into these
    namespaces and no other (rules/teams.py). Staff manage them in the admin, with `manage.py
    createteam TEAM --namespace NS` / `teamnamespaces TEAM --add NS --remove NS`, and through
    `/api/v1/team-namespaces/`."""

    team = models.ForeignKey(Group, on_delete=models.CASCADE, related_name="namespaces")
    pattern = models.CharField(max_length=253)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["team", "pattern"], name="team_namespace_unique")
        ]
        ordering = ["team__name", "pattern"]

    def __str__(self) -> str:
        return f"{self.pattern} ({self.team.name})"

    def clean(self) -> None:
        problem = team_rules.pattern_problem(self.pattern or "")
        if problem:
            raise ValidationError({"pattern": problem})


class AdmissionRecord(models.Model):
    """A request the admission webhook denied, or would have denied in warn mode (`enforced`
    False). One row per object, reason and mode, counted: a controller that retries the same
    pod moves `last_at` and `count` instead of adding rows. Dry-run requests (kubectl
    --dry-run=server) are never recorded: they change nothing, the record included."""

    # The cluster whose API server sent the review (the webhook's path names it).
    cluster = models.CharField(max_length=100, blank=True, default="")
    resource = models.CharField(max_length=64)  # "pods", "network-attachment-definitions"
    namespace = models.CharField(max_length=63)
    name = models.CharField(max_length=253)  # generateName + "*" when the name is not set yet
    codes = models.CharField(max_length=300)  # finding codes, comma-separated
    enforced = models.BooleanField()
    operation = models.CharField(max_length=10)
    username = models.CharField(max_length=253, blank=True)
    uid = models.CharField(max_length=64, blank=True)  # of the last request
    message = models.TextField()
    count = models.PositiveIntegerField(default=1)
    first_at = models.DateTimeField(default=timezone.now)
    last_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["cluster", "resource", "namespace", "name", "codes", "enforced"],
                name="admission_record_cluster_unique",
            )
        ]
        ordering = ["-last_at", "-id"]

    def __str__(self) -> str:
        return f"{self.resource} {self.namespace}/{self.name}: {self.codes}"
