"""Who owns this NIC? The pure ownership engine: facts in, one verdict per link out.

No I/O, no ORM. ``read/facts.py`` turns the stored agent facts, the pods' Multus
``network-status`` and the active reservations into the dataclasses of ``ownership_facts.py``
(named here too), and ``sync/verdicts.py`` stores what :func:`decide_node` returns.

Precedence (the first rule that speaks decides; the order of ``_RULES`` below):

1. ``unknown``   the node's cluster API or its agent has not answered lately (facts may be stale).
1b. ``system``   pinned: seen holding a Kubernetes node address or the default route, which the
   latest snapshot shows on no NIC (``rules/crosscheck.py``; the node page shows the finding).
2. ``pod`` / ``missing`` / gone  the link is gone from the host: a pod on this node claims it by
   MAC, permanent MAC or PCI address (``pod``); nobody does and it is a NIC (``missing``: a NIC
   host-device took and never gave back); nobody does and it is no NIC (a ``cali*`` veth, any
   virtual link): it died with the network namespace it lived in, nothing can bring it back,
   and the verdict says ``gone`` so that sync drops it from the inventory.
3. ``pod`` / ``userspace`` / ``missing``  a PCI function whose netdev is not on the host, or one
   bound to a userspace driver: claimed by a pod through its PCI address (``pod``, e.g. an SR-IOV
   VF handed out by a device plugin or a pciBusID NAD) or, with a kernel driver, through the MAC
   last seen on it (a NIC host-device moved by device or hwaddr), bound to vfio-pci/uio
   (``userspace``; a **VF** so bound goes on to the rules below: host-device takes it by
   pciBusID), or ``missing``.
4. ``system``    loopback.
5. ``system``    carries the default route (IPv4 or IPv6; IPv6-only nodes included).
6. ``system``    holds one of the node's InternalIPs or ExternalIPs (the Kubernetes API's
   ``status.addresses``), by address match on the reported links.
7. ``system``    in the master tree of a link of rules 1b, 5 or 6 (bond slaves, bridge ports, the
   other ports of a bridge whose bond carries the route): moving it cuts the node off.
8. ``cni``       a primary-CNI / kube-infrastructure name that the other facts do not contradict,
   or a master (bridge, OVS datapath) that is one: see :func:`cni_owner`.
9. ``system``    any other address that is not IPv6 link-local (fe80::/10): the node uses it.
10. ``enslaved`` has a master (bridge, bond, team, Open vSwitch): the master decides.
11. ``enslaved`` an SR-IOV PF with VFs enabled: moving it would take the VFs with it.
12. ``system``   wireless: host-device cannot move it (containernetworking/plugins #957).
13. ``virtual``  a virtual kind (bridge, bond, vxlan, tun, …; veth unless the node's veth links
   are its NICs, as in the lab): nothing a NAD should point at.
14. ``reserved`` free, but a team holds a reservation on its identity.
15. ``free``     a physical (or lab veth) NIC that nothing above uses (VFs: ``rules/sriov.py``).

An SR-IOV VF goes through the same rules on its own facts: a VF that holds a node address, the
default route or is in the uplink's bond is ``system`` like any NIC (rules 1b, 5-7; the pins of
``rules/crosscheck.py`` follow it by its PCI address). The PF's use does not make it busy: a VF
is a PCI function of its own with its own netdev, and moving it into a pod leaves the PF's
traffic alone (the SR-IOV network device plugin likewise refuses a device that carries the
default route and a PF with VFs configured, never the VFs of that PF). A free VF of a PF the node
uses says so in its reason (:func:`pf_role`), and the PF itself stays ``system``/``cni``/
``enslaved``, never offered.

Three annotations are added after the rules:

- ``orphan``: a host link named like a pod interface (``netN``, or a name pods on this node use)
  whose alias holds another name is a NIC that host-device returned from a pod whose netns died
  without DEL. The flag is a fact and is set whatever the state; the orphan sentence replaces the
  reason only when the link is otherwise free (the only case where the user can act on it).
- a reservation on a link that is not free (in a pod, grabbed by the node, …) is named at the end
  of the reason, so the team sees why its NIC is not usable.
- ``breach``: a reserved link in a pod that is not the reserving team's (``rules/teams.py`` says
  whose a pod is) carries the sentence that says so.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from inventory.rules import cni_names, crosscheck, sriov, teams
from inventory.rules.cni_names import OVN_MARKERS, CniName

# The facts in and the verdicts out, named here for every caller (ownership.LinkFacts, …).
from inventory.rules.ownership_facts import (
    LinkFacts,
    NodeFacts,
    NodeJudgement,
    PodClaim,
    ReservationFacts,
    Verdict,
)
from inventory.rules.states import OwnershipState

# What host-device names the link in the pod (CNI_IFNAME): Multus' default is net1, net2, …
_POD_IFNAME = re.compile(r"net\d+")
# A Linux interface name (what an alias must look like to be host-device's saved name).
_IFNAME = re.compile(r"[^\s/:]{1,15}")
_LINK_LOCAL_V6 = ipaddress.ip_network("fe80::/10")
_NO_MAC = "00:00:00:00:00:00"  # a VF before its MAC is set: matches nothing
_MASTER_NOUN = {
    "bridge": "port of bridge",
    "bond": "slave of bond",
    "team": "port of team",
    "openvswitch": "port of Open vSwitch",
}


# -- the node as the rules see it --------------------------------------------------------------


@dataclass(slots=True)
class _Node:
    """Everything a rule may look up besides the link itself, built once per node."""

    facts: NodeFacts
    by_name: dict[str, LinkFacts]  # present links only: masters, PFs and uplinks live here
    by_pci: dict[str, LinkFacts]
    claims: Sequence[PodClaim]
    reservations: Mapping[str, ReservationFacts]
    pod_ifnames: frozenset[str]
    ovn: bool
    check: crosscheck.CrossCheck
    uplinks: dict[str, str] = field(default_factory=dict)  # name -> "carries the default route"
    uplink_of_root: dict[str, str] = field(default_factory=dict)  # tree root -> uplink name
    pf_verdicts: dict[str, Verdict | None] = field(default_factory=dict)
    vfs_by_pf: dict[str, list[LinkFacts]] = field(default_factory=dict)  # PF address -> VFs

    @classmethod
    def build(
        cls,
        node: NodeFacts,
        links: Sequence[LinkFacts],
        claims: Sequence[PodClaim],
        reservations: Mapping[str, ReservationFacts] | None,
    ) -> _Node:
        present = [link for link in links if link.present]
        by_name: dict[str, LinkFacts] = {}
        by_pci: dict[str, LinkFacts] = {}
        vfs_by_pf: dict[str, list[LinkFacts]] = {}
        for link in present:
            by_name.setdefault(link.name, link)
            if link.pci_address and link.has_netdev:
                by_pci.setdefault(link.pci_address.lower(), link)
            if link.pf_pci_address:
                vfs_by_pf.setdefault(link.pf_pci_address.lower(), []).append(link)
        ctx = cls(
            facts=node,
            by_name=by_name,
            by_pci=by_pci,
            claims=claims,
            reservations=reservations or {},
            pod_ifnames=frozenset(claim.pod_interface for claim in claims),
            ovn=any(link.name in OVN_MARKERS for link in present),
            check=crosscheck.cross_check(node, links),
            vfs_by_pf=vfs_by_pf,
        )
        kept, addresses = ctx.check.kept, ctx.check.addresses
        for link in [*present, *(link for link in links if not link.present and link.key in kept)]:
            clause = _route_clause(link) or crosscheck.held_address_clause(link, addresses)
            if not clause and link.key in kept:
                clause = "was the node's uplink when last reported"
            if clause and link.name not in ctx.uplinks:
                ctx.uplinks[link.name] = clause
                ctx.uplink_of_root.setdefault(ctx.root(link).name, link.name)
        return ctx

    def masters(self, link: LinkFacts) -> list[LinkFacts]:
        """The chain of masters above ``link``, nearest first (cycle-safe)."""
        chain: list[LinkFacts] = []
        seen = {link.name}
        current = link
        while current.master and current.master not in seen:
            above = self.by_name.get(current.master)
            if above is None:
                break
            chain.append(above)
            seen.add(above.name)
            current = above
        return chain

    def root(self, link: LinkFacts) -> LinkFacts:
        chain = self.masters(link)
        return chain[-1] if chain else link


Rule = Callable[[LinkFacts, _Node], Verdict | None]


# -- small helpers -----------------------------------------------------------------------------


def _utc(moment: datetime) -> str:
    # Naive datetimes are taken as UTC: that is what the models store with USE_TZ.
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _route_clause(link: LinkFacts) -> str:
    if link.default_route_v4 and link.default_route_v6:
        return "carries the default route (IPv4 and IPv6)"
    if link.default_route_v6:
        return "carries the default route (IPv6)"
    return "carries the default route" if link.default_route_v4 else ""


def _used_address(link: LinkFacts) -> str:
    """The first address that is not IPv6 link-local. An unparsable one counts as used: the
    engine never calls a link free on facts it cannot read."""
    for address in link.addresses:
        ip = crosscheck.parse_ip(address)
        if ip is None or ip not in _LINK_LOCAL_V6:
            return address
    return ""


def _claim_for(link: LinkFacts, claims: Sequence[PodClaim], *, by_mac: bool) -> PodClaim | None:
    macs = {m.lower() for m in (link.mac, link.permanent_mac) if m} - {_NO_MAC} if by_mac else set()
    pci = link.pci_address.lower()
    for claim in claims:
        if claim.mac and claim.mac.lower() in macs:
            return claim
        if pci and claim.pci_address and claim.pci_address.lower() == pci:
            return claim
    return None


def _in_pod(claim: PodClaim) -> Verdict:
    pod = f"pod {claim.namespace}/{claim.pod}"
    reason = f"in {pod} as {claim.pod_interface} via NAD {claim.nad}"
    return Verdict(OwnershipState.POD, reason, pod)


def _system(reason: str) -> Verdict:
    return Verdict(OwnershipState.SYSTEM, reason, "node")


def cni_owner(link: LinkFacts, *, ovn_on_node: bool = False) -> CniName | None:
    """The CNI name entry that ``link``'s name matches, if its other facts agree
    (``rules/cni_names.py``)."""
    return cni_names.owner(
        name=link.name,
        kind=link.kind,
        hardware=bool(link.pci_address) or link.kind == "physical" or link.wireless,
        ovn_on_node=ovn_on_node,
    )


def _master_phrase(link: LinkFacts, ctx: _Node) -> tuple[str, str]:
    """("port of bridge br-ex", "bridge br-ex") for a link's direct master."""
    master_link = ctx.by_name.get(link.master)
    kind = link.master_kind or (master_link.kind if master_link else "")
    noun = _MASTER_NOUN.get(kind, f"port of {kind}" if kind else "enslaved to")
    return f"{noun} {link.master}", f"{kind} {link.master}".strip()


# -- the rules, in precedence order ------------------------------------------------------------


def _agent_silent(link: LinkFacts, ctx: _Node) -> Verdict | None:
    node = ctx.facts
    if node.cluster_unreachable:  # which pods hold NICs is not known: no other verdict holds
        return Verdict(OwnershipState.UNKNOWN, node.cluster_unreachable, "")
    if node.agent_fresh:
        return None
    since = f"since {_utc(node.agent_last_contact)}" if node.agent_last_contact else "recently"
    reason = f"agent on {node.name} has not answered {since}; last known facts shown"
    return Verdict(OwnershipState.UNKNOWN, reason, "")


def is_nic(link: LinkFacts, node: NodeFacts) -> bool:
    """Could host-device have taken this link and kept it? A NIC: a PCI function, a physical or
    wireless link, or a veth on a node whose veth links are its NICs (the lab), unless the
    primary CNI owns it by name. Every other link dies with the network namespace it is in."""
    if cni_owner(link) is not None:
        return False
    return (
        bool(link.pci_address)
        or link.kind == "physical"
        or link.wireless
        or (link.kind == "veth" and node.veth_nics)
    )


def _gone_from_host(link: LinkFacts, ctx: _Node) -> Verdict | None:
    if link.present:
        return None
    claim = _claim_for(link, ctx.claims, by_mac=True)
    if claim:
        return _in_pod(claim)
    if not is_nic(link, ctx.facts):
        # A cali* veth goes when its pod's namespace goes; a bridge or vlan when someone deletes
        # it. Neither is stranded anywhere: calling it missing would be a permanent false alarm.
        entry = cni_owner(link)
        what = (
            f"created by {entry.owner} ({entry.label or link.name})"
            if entry
            else (f"{link.kind or 'other'}: a virtual link, not a NIC")
        )
        state = OwnershipState.CNI if entry else OwnershipState.VIRTUAL
        reason = f"{what}; destroyed (a virtual link is never stranded)"
        return Verdict(state, reason, entry.owner if entry else "", gone=True)
    reason = "gone from the host and no pod claims it (stranded in a deleted pod's namespace?)"
    return Verdict(OwnershipState.MISSING, reason, "")


def _pci_function_only(link: LinkFacts, ctx: _Node) -> Verdict | None:
    # Claims count only for links whose netdev is not on the host: a MAC that is on the host is
    # not in a pod, whatever an old network-status says. A PCI claim covers SR-IOV VFs handed to
    # a pod by a device plugin (netdev moved by sriov-cni, or bound to vfio-pci for DPDK) or by a
    # pciBusID NAD (sync/listing.py takes the address from the NAD when device-info has none).
    userspace = link.driver in sriov.USERSPACE_DRIVERS
    if link.has_netdev and not userspace:
        return None
    claim = _away_claim(link, ctx)
    if claim:
        return _in_pod(claim)
    if userspace and link.pf_pci_address:
        return None  # host-device takes a vfio VF by pciBusID: its own use? reserved? else free
    if userspace:
        reason = f"bound to {link.driver} (DPDK): usable only through pciBusID / a device plugin"
        return Verdict(OwnershipState.USERSPACE, reason, "")
    what = f"PCI function {link.pci_address}" if link.pci_address else link.name
    if link.pci_address and not link.driver:  # host-device fails on it: say why
        what = f"{_vf_words(link) or what} {sriov.NO_DRIVER_CLAUSE}"
        return Verdict(OwnershipState.MISSING, what, "")
    return Verdict(OwnershipState.MISSING, f"{what} has no netdev on the host", "")


def _away_claim(link: LinkFacts, ctx: _Node) -> PodClaim | None:
    """The pod holding a PCI function whose netdev is not on the host: by the PCI address of its
    attachment, or, for a kernel-driver function, by the MAC last seen on it (sync keeps it):
    host-device moves a netdev by device, hwaddr or pciBusID with its MAC, and the pod's
    network-status reports that MAC, with no device-info. A function bound to a userspace
    driver has no netdev anywhere: only its address can name it."""
    return _claim_for(link, ctx.claims, by_mac=link.driver not in sriov.USERSPACE_DRIVERS)


def _loopback(link: LinkFacts, ctx: _Node) -> Verdict | None:
    return _system("loopback: used by the node itself") if link.kind == "loopback" else None


def _default_route(link: LinkFacts, ctx: _Node) -> Verdict | None:
    clause = _route_clause(link)
    return _system(clause) if clause else None


def _node_address(link: LinkFacts, ctx: _Node) -> Verdict | None:
    clause = crosscheck.held_address_clause(link, ctx.check.addresses)
    return _system(clause) if clause else None


def _kept_uplink(link: LinkFacts, ctx: _Node) -> Verdict | None:
    # Before the gone and PCI rules: a snapshot that hides the node's uplink, or leaves it out,
    # must not make it free, missing or stranded while the API still says the node uses it.
    kept = ctx.check.kept.get(link.key)
    return _system(kept) if kept else None


def _uplink_member(link: LinkFacts, ctx: _Node) -> Verdict | None:
    """A link in the master tree of an uplink: below it (bond slave, bridge port, nested), or,
    when the tree's root is a Linux bridge, above it (the bridge the routed bond is a port of) or
    beside it (another port of that bridge: it shares the node's L2 segment).

    Not through Open vSwitch: every OVS port's master is the one ``ovs-system`` datapath, so
    netlink does not say which OVS bridge a port is in; those are left to the CNI rule."""
    if link.name in ctx.uplinks:
        return None
    chain = ctx.masters(link)
    for position, above in enumerate(chain):
        if above.name in ctx.uplinks:
            via = f" through {chain[position - 1].name}" if position else ""
            return _system(f"member of {above.name}{via}, which {ctx.uplinks[above.name]}")
    root = chain[-1] if chain else link
    uplink = ctx.uplink_of_root.get(root.name)
    if uplink is None or root.kind != "bridge" or ctx.by_name.get(root.name) is not root:
        return None
    if root is link:
        return _system(f"holds {uplink}, which {ctx.uplinks[uplink]}")
    return _system(f"in {root.name} together with {uplink}, which {ctx.uplinks[uplink]}")


def _primary_cni(link: LinkFacts, ctx: _Node) -> Verdict | None:
    entry = cni_owner(link, ovn_on_node=ctx.ovn)
    if entry:
        label = entry.label or link.name
        return Verdict(OwnershipState.CNI, f"created by {entry.owner} ({label})", entry.owner)
    # A link under a CNI master (a veth in cni0/docker0, a NIC in Open vSwitch) belongs to it.
    chain = ctx.masters(link)
    for position, above in enumerate(chain):
        entry = cni_owner(above, ovn_on_node=ctx.ovn)
        if entry is None:
            continue
        if position == 0:
            where = _master_phrase(link, ctx)[0]
        else:
            where = f"member of {above.name} through {link.master}"
        return Verdict(OwnershipState.CNI, f"{where}, which belongs to {entry.owner}", entry.owner)
    if link.master and link.master not in ctx.by_name:
        # The master is not among the links (partial snapshot): judge it by name and kind.
        ghost = LinkFacts(key=link.master, name=link.master, kind=link.master_kind or "other")
        entry = cni_owner(ghost, ovn_on_node=ctx.ovn)
        if entry:
            where = _master_phrase(link, ctx)[0]
            reason = f"{where}, which belongs to {entry.owner}"
            return Verdict(OwnershipState.CNI, reason, entry.owner)
    return None


def _other_address(link: LinkFacts, ctx: _Node) -> Verdict | None:
    address = _used_address(link)
    return _system(f"has address {address}: used by the node") if address else None


def _master(link: LinkFacts, ctx: _Node) -> Verdict | None:
    if not link.master:
        return None
    reason, holder = _master_phrase(link, ctx)
    return Verdict(OwnershipState.ENSLAVED, reason, holder)


_HOST_USE_RULES: tuple[Rule, ...] = (
    _loopback,
    _default_route,
    _node_address,
    _uplink_member,
    _primary_cni,
    _other_address,
    _master,
)
_BUSY_PF_STATES = frozenset({OwnershipState.SYSTEM, OwnershipState.CNI, OwnershipState.ENSLAVED})


def _pf_use(pf: LinkFacts, ctx: _Node) -> Verdict | None:
    """How the node uses a PF itself (rules 4-10 only: "has VFs" is not a use)."""
    if pf.name not in ctx.pf_verdicts:
        ctx.pf_verdicts[pf.name] = next(
            (verdict for rule in _HOST_USE_RULES if (verdict := rule(pf, ctx))), None
        )
    return ctx.pf_verdicts[pf.name]


def pf_role(link: LinkFacts, ctx: _Node) -> tuple[LinkFacts, Verdict] | None:
    """A VF's PF and how the node uses it (rules 4-10), None when the PF is not on the host or
    the node does not use it. Said in the VF's reason; it never makes the VF busy: a VF is a PCI
    function of its own with its own netdev, and moving it leaves the PF's traffic alone (the
    SR-IOV device plugin likewise offers the VFs of a PF that carries the default route)."""
    pf = ctx.by_pci.get(link.pf_pci_address.lower()) if link.pf_pci_address else None
    if pf is None or pf is link:
        return None
    pf_verdict = _pf_use(pf, ctx)
    if pf_verdict is None or pf_verdict.state not in _BUSY_PF_STATES:
        return None
    return pf, pf_verdict


def _vf_words(link: LinkFacts) -> str:
    return sriov.vf_words(link.pf_pci_address, vf_index=link.vf_index, pf_name=link.pf_name)


def _pf_with_vfs(link: LinkFacts, ctx: _Node) -> Verdict | None:
    # Enslaved rather than system: the PF is not the node's, its VFs are (they are what a NAD
    # should point at); handing the PF to a pod would take every VF with it.
    if link.sriov_num_vfs <= 0:
        return None
    vfs = ctx.vfs_by_pf.get(link.pci_address.lower(), []) if link.pci_address else []
    # In a pod: as rule 3 judges a function whose netdev is not on the host.
    away = [vf for vf in vfs if not vf.has_netdev or vf.driver in sriov.USERSPACE_DRIVERS]
    in_pods = sum(1 for vf in away if _away_claim(vf, ctx))
    reason = sriov.pf_with_vfs_reason(num_vfs=link.sriov_num_vfs, in_pods=in_pods)
    return Verdict(OwnershipState.ENSLAVED, reason, sriov.PF_HOLDER)


def _wireless(link: LinkFacts, ctx: _Node) -> Verdict | None:
    if not link.wireless:
        return None
    return _system("wireless NIC: host-device cannot move it (containernetworking/plugins #957)")


def _virtual_kind(link: LinkFacts, ctx: _Node) -> Verdict | None:
    # Unknown kinds count as virtual: only a known NIC kind may ever be called free.
    if link.kind == "physical" or (link.kind == "veth" and ctx.facts.veth_nics):
        return None
    kind = link.kind or "other"
    return Verdict(OwnershipState.VIRTUAL, f"{kind}: a virtual link, not a NIC", "")


def _reservation_text(reservation: ReservationFacts) -> str:
    text = f"reserved by team {reservation.team} until {_utc(reservation.expires_at)}"
    return f"{text}: {reservation.purpose}" if reservation.purpose else text


def _reserved(link: LinkFacts, ctx: _Node) -> Verdict | None:
    reservation = ctx.reservations.get(link.key)
    if reservation is None:
        return None
    holder = f"team {reservation.team}"
    return Verdict(OwnershipState.RESERVED, _reservation_text(reservation), holder)


def _free(link: LinkFacts, ctx: _Node) -> Verdict:
    vf = _vf_words(link)
    if vf:
        role = pf_role(link, ctx)
        pf_use = sriov.pf_use_clause(role[0].name, role[1].reason) if role else ""
        reason = sriov.free_vf_reason(
            vf, driver=link.driver, pci_address=link.pci_address, pf_use=pf_use
        )
        return Verdict(OwnershipState.FREE, reason, "")
    if link.kind == "veth":
        return Verdict(OwnershipState.FREE, "lab NIC (veth): no address, no master, not in use", "")
    details = ", ".join(
        part for part in (f"driver {link.driver}" if link.driver else "", link.pci_address) if part
    )
    what = f"physical NIC ({details})" if details else "physical NIC"
    return Verdict(OwnershipState.FREE, f"{what}: no address, no master, not in use", "")


_RULES: tuple[Rule, ...] = (
    _agent_silent,
    _kept_uplink,
    _gone_from_host,
    _pci_function_only,
    *_HOST_USE_RULES,
    _pf_with_vfs,
    _wireless,
    _virtual_kind,
    _reserved,
    _free,
)


# -- annotations and the public entry points ---------------------------------------------------


def orphan_original_name(link: LinkFacts, *, pod_ifnames: frozenset[str] = frozenset()) -> str:
    """The name host-device saved in the alias of a link that came back from a dead pod.

    A present link named like a pod interface (``netN``, or a name pods on this node use) whose
    alias is another valid interface name. "" when the link is not an orphan.
    """
    if not link.present or not link.alias or link.alias == link.name:
        return ""
    if not (_POD_IFNAME.fullmatch(link.name) or link.name in pod_ifnames):
        return ""
    return link.alias if _IFNAME.fullmatch(link.alias) else ""


def _annotate(link: LinkFacts, verdict: Verdict, ctx: _Node) -> Verdict:
    original = orphan_original_name(link, pod_ifnames=ctx.pod_ifnames)
    reason = verdict.reason
    if original:
        orphan_text = (
            f"orphan returned from a dead pod as {link.name}; its original name was {original}"
            f" (rename back: ip link set {link.name} name {original})"
        )
        if verdict.state == OwnershipState.FREE:
            reason = orphan_text
        elif verdict.state == OwnershipState.RESERVED:
            reason = f"{reason}; {orphan_text}"
    reservation = ctx.reservations.get(link.key)
    if reservation and verdict.state not in {
        OwnershipState.RESERVED,
        OwnershipState.UNKNOWN,
    }:
        reason = f"{reason}; {_reservation_text(reservation)}"
    breach = ""
    if reservation and verdict.state == OwnershipState.POD:
        claim = _claim_for(link, ctx.claims, by_mac=True)
        if claim is not None:
            breach = teams.breach(
                reserved_team=reservation.team,
                namespace=claim.namespace,
                pod=claim.pod,
                nad=claim.nad,
                namespace_teams=claim.namespace_teams,
                nad_team=claim.nad_team,
            )
    return Verdict(
        verdict.state,
        reason,
        verdict.holder,
        orphan=bool(original),
        breach=breach,
        gone=verdict.gone,
        pinned=ctx.check.pins.get(link.key, ()),
    )


def _decide_in(link: LinkFacts, ctx: _Node) -> Verdict:
    for rule in _RULES:
        verdict = rule(link, ctx)
        if verdict is not None:
            return _annotate(link, verdict, ctx)
    raise AssertionError("unreachable: _free always answers")  # pragma: no cover


def decide_node(
    node: NodeFacts,
    links: Sequence[LinkFacts],
    *,
    claims: Sequence[PodClaim] = (),
    reservations: Mapping[str, ReservationFacts] | None = None,
) -> list[Verdict]:
    """One verdict per link, same order. Needs all links of the node (masters, subtrees, VFs).

    ``claims`` are the network-status entries of pods scheduled on this node; ``reservations``
    the active ones, keyed by ``LinkFacts.key`` (the caller drops expired ones).
    """
    return judge_node(node, links, claims=claims, reservations=reservations).verdicts


def judge_node(
    node: NodeFacts,
    links: Sequence[LinkFacts],
    *,
    claims: Sequence[PodClaim] = (),
    reservations: Mapping[str, ReservationFacts] | None = None,
) -> NodeJudgement:
    """The verdicts of :func:`decide_node` and where the snapshot contradicts the Kubernetes
    API's view of the node (``rules/crosscheck.py``)."""
    ctx = _Node.build(node, links, claims, reservations)
    return NodeJudgement([_decide_in(link, ctx) for link in links], list(ctx.check.findings))


def decide(
    link: LinkFacts,
    node: NodeFacts,
    *,
    links: Sequence[LinkFacts] = (),
    claims: Sequence[PodClaim] = (),
    reservations: Mapping[str, ReservationFacts] | None = None,
) -> Verdict:
    """The verdict for one link; ``links`` is the rest of the node (masters, uplinks, the PF)."""
    context_links = list(links) if link in links else [link, *links]
    return _decide_in(link, _Node.build(node, context_links, claims, reservations))
