"""Build, validate and apply host-device NADs against the inventory. Shared by the NAD builder
pages, the REST API (`/api/v1/nads/render|validate|apply/`) and scripts: one keyword signature
(`render` and `apply` take the same request fields), each door translating its own input.

The rules live in the pure `inventory.rules.nad` package; this module only turns Interface rows into
its facts, and does the side effects of `apply`: create the NADs in the cluster, store them, and
write the history.

A request acts on one cluster (docs/CLUSTERS.md): the one it names (`cluster`), else its NICs'
own, else the default cluster. NICs of two clusters in one request, or NICs of another cluster
than the one named, are refused with the field and the rule; `apply` creates the NADs through
the registry's client for that cluster (services.cluster_clients), never the default one's.

Applying is "all or nothing" across the cluster and the database, in this order:
0. the namespace must be one the acting team may apply into (services.teams.check_apply: the
   team's namespaces, staff anywhere); otherwise PermissionDenied with the reason;
1. render the request (the dry run): any error finding refuses the whole request and nothing is
   written anywhere;
2. create each NAD with a plain POST. A NAD of that name already in the cluster answers 409: it
   is never replaced (no PUT, no patch) and the NADs this call created before it are deleted
   again, so a refused apply leaves the cluster as it found it;
3. store the NetworkAttachment rows and one HistoryEntry per NAD in one transaction. If that
   transaction fails, the NADs created in step 2 are deleted again.
Two people applying the same name at the same time cannot both win: the API server's 409 on the
create is the arbiter, not a read-then-write here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Required, TypedDict, Unpack

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction

from inventory.choices import HistoryKind, NadOrigin
from inventory.clients.cluster import ClusterClient, ClusterError, NadExists
from inventory.clients.cluster_objects import NadInfo
from inventory.models import Cluster, Interface, NetworkAttachment
from inventory.read import facts
from inventory.rules import nad
from inventory.rules.nad.ipam_fields import parse_ipam_fields
from inventory.services import audit, cluster_clients, teams
from inventory.services.errors import Conflict

log = logging.getLogger(__name__)


class NadRefused(ValidationError):
    """The dry run found errors: nothing was created. `result` is that dry run and `findings`
    every finding of it (errors and the rest); the ValidationError's message dict is keyed by
    finding field, each message followed by its fix, so a door can show it as is."""

    def __init__(self, result: nad.BuildResult) -> None:
        self.result = result
        self.findings = tuple(result.findings)
        messages: dict[str, list[str]] = {}
        for finding in self.findings:
            if finding.severity == nad.ERROR:
                text = (
                    f"{finding.message} {finding.fix}".strip() if finding.fix else finding.message
                )
                messages.setdefault(finding.field or "non_field_errors", []).append(text)
        super().__init__(messages)


# --------------------------------------------------------------------------------- requests


def ipam_request(ipam: Mapping[str, Any] | nad.IpamRequest | None) -> nad.IpamRequest:
    """An IpamRequest from a dict of its fields, in NICPortal's names or CNI's own shapes
    (rules/nad/ipam_fields.py). What cannot be read is a ValidationError keyed by the field
    ("ipam.addresses[0]"): a silently dropped field would give an attachment without the
    addresses the user asked for."""
    if ipam is None:
        return nad.IpamRequest()
    if isinstance(ipam, nad.IpamRequest):
        return ipam
    request, errors = parse_ipam_fields(ipam)
    if errors:
        raise ValidationError(errors)
    return request


def interface_ids(refs: Sequence[int | str], *, cluster: str = "") -> list[int]:
    """Interface ids from what a caller names: an id, or "node/name" as the pages show it
    (`n1/eth3`), looked up among the nodes of `cluster` (a registry name; the default cluster
    for ""): node names are unique per cluster only. A name the node has twice (a link gone and
    another of that name since) means the one on the host. ValidationError on `interfaces`
    naming each reference that matches nothing, or on `cluster` for a cluster nobody knows."""
    wanted = {ref for ref in refs if isinstance(ref, str)}
    if not wanted:
        return [int(ref) for ref in refs]
    where = facts.chosen_cluster(cluster)
    pairs = {tuple(ref.split("/", 1)) for ref in wanted}
    rows = (
        Interface.objects.filter(node__cluster=where, node__in_cluster=True)
        .filter(node__name__in={n for n, _ in pairs}, name__in={i for _, i in pairs})
        .order_by("-present", "id")
        .values_list("node__name", "name", "pk")
    )
    found: dict[str, int] = {}
    for node, name, pk in rows:
        found.setdefault(f"{node}/{name}", pk)
    errors = []
    named = where.name if where is not None else settings.CLUSTER_NAME
    for index, ref in enumerate(refs):
        if isinstance(ref, str) and ref not in found:
            node = ref.split("/", 1)[0]
            known = facts.cluster_nodes_named(where, node)
            errors.append(
                f"interfaces[{index}]: node {node} has no interface named {ref.split('/', 1)[1]}."
                if known
                else f"interfaces[{index}]: there is no node {node} in cluster {named}."
            )
    if errors:
        raise ValidationError({"interfaces": errors})
    return [found[ref] if isinstance(ref, str) else int(ref) for ref in refs]


def request_cluster(interfaces: Sequence[Interface], cluster: str = "") -> Cluster | None:
    """The cluster a NAD request acts on: the one it names, else its NICs' cluster, else the
    default cluster. A NAD, the pods that use it and their NICs live in one cluster: NICs of
    two clusters in one request, or NICs of another cluster than the one named, are a
    ValidationError naming the field and the rule."""
    theirs = {i.node.cluster.name: i.node.cluster for i in interfaces}
    if len(theirs) > 1:
        raise ValidationError(
            {
                "interface_ids": [
                    f"NICs of clusters {', '.join(sorted(theirs))} in one request: a NAD and the "
                    "pods that use it live in one cluster; build one NAD per cluster."
                ]
            }
        )
    if not (cluster or "").strip():
        return next(iter(theirs.values())) if theirs else facts.configured_cluster()
    named = facts.chosen_cluster(cluster)
    elsewhere = [str(i) for i in interfaces if i.node.cluster_id != named.pk]
    if elsewhere:
        raise ValidationError(
            {
                "cluster": [
                    f"{', '.join(elsewhere)} is not a NIC of cluster {named.name} but of "
                    f"cluster {next(iter(theirs))}: a NAD uses the NICs of its own cluster."
                ]
            }
        )
    return named


def _interfaces(interface_ids: Sequence[int]) -> list[Interface]:
    ids = list(dict.fromkeys(int(i) for i in interface_ids))
    rows = {
        i.pk: i
        for i in Interface.objects.filter(pk__in=ids).select_related("node", "node__cluster")
    }
    missing = [i for i in ids if i not in rows]
    if missing:
        raise ValidationError(
            {"interface_ids": [f"No interface with id {', '.join(map(str, missing))}."]}
        )
    return [rows[i] for i in ids]


def build_request(
    *,
    namespace: str,
    name: str,
    interface_ids: Sequence[int],
    selector: str = "auto",
    pod_interface: str = "net1",
    ipam: Mapping[str, Any] | nad.IpamRequest | None = None,
    cni_version: str = "auto",
    team: Group | None = None,
    resource_name: str = "",
    other_pod_interfaces: Sequence[str] = (),
    cluster: str = "",
) -> nad.NadRequest:
    """The pure request for these interfaces: each with its node's host-device facts and its
    active reservation's team. `other_pod_interfaces` names the pod interfaces of the pod's other
    attachments, if known; the primary CNI's eth0 is always among them. `cluster` (a registry
    name, "" for the NICs' own) is checked by request_cluster."""
    interfaces = _interfaces(interface_ids)
    where = request_cluster(interfaces, cluster)
    teams = facts.active_teams(i.pk for i in interfaces)
    plugins: dict[int, nad.PluginFacts | None] = {}
    devices = []
    for interface in interfaces:
        if interface.node_id not in plugins:
            plugins[interface.node_id] = facts.plugin_facts(interface.node)
        devices.append(
            facts.device_facts(
                interface,
                reserved_team=teams.get(interface.pk, ""),
                plugin=plugins[interface.node_id],
            )
        )
    others = tuple(
        dict.fromkeys(
            [nad.PRIMARY_POD_INTERFACE, *(str(n).strip() for n in other_pod_interfaces if n)]
        )
    )
    return nad.NadRequest(
        namespace=(namespace or "").strip(),
        name=(name or "").strip(),
        devices=tuple(devices),
        selector=selector or "auto",
        pod_interface=(pod_interface or "net1").strip(),
        other_pod_interfaces=others,
        ipam=ipam_request(ipam),
        cni_version=(cni_version or "auto").strip(),
        multus_version=facts.multus_version_for(where),
        team=team.name if team is not None else "",
        resource_name=(resource_name or "").strip(),
        elsewhere=facts.selectors_elsewhere(interfaces),
    )


# --------------------------------------------------------------------------------- workflows


class NadFields(TypedDict, total=False):
    """The request fields `render` and `apply` take (build_request's arguments but the team)."""

    namespace: Required[str]
    name: Required[str]
    interface_ids: Required[Sequence[int]]
    selector: str
    pod_interface: str
    ipam: Mapping[str, Any] | nad.IpamRequest | None
    cni_version: str
    resource_name: str
    other_pod_interfaces: Sequence[str]
    cluster: str


def render(
    *, user: Any, team: Group | None = None, **request: Unpack[NadFields]
) -> nad.BuildResult:
    """Build the NAD(s) for a request without side effects. Raises ValidationError for unknown
    interfaces or IPAM fields, PermissionDenied when the user may not act for `team` (None:
    acting for no team)."""
    teams.check_acting(user, team)
    return nad.build(build_request(team=team, **request))


def validate_manifest(*, text: str, cluster: str = "") -> list[nad.Finding]:
    """Lint a pasted NAD (YAML or JSON) against the inventory of `cluster` (a registry name; the
    default cluster for ""). ValidationError on `cluster` for a cluster nobody knows."""
    cluster = facts.chosen_cluster(cluster)
    nodes = facts.cluster_nodes(cluster)
    return nad.lint_manifest(
        text,
        devices_by_node=facts.devices_by_node(nodes),
        plugins_by_node=facts.plugins_by_node(nodes),
        multus_version=facts.multus_version_for(cluster),
    )


def apply(
    *,
    user: Any,
    team: Group | None = None,
    client: ClusterClient | None = None,
    **request: Unpack[NadFields],
) -> list[NetworkAttachment]:
    """Render (as `render`), then create the NAD(s) in the NICs' cluster, through the registry's
    client for it (services.cluster_clients), and store them (see the module docstring).

    Raises PermissionDenied when the user may not act for `team` or may not apply into the
    namespace (the team's namespaces, staff anywhere: services.teams.check_apply), checked
    before anything is built; NadRefused (a ValidationError carrying the dry run) when the dry
    run has errors, Conflict when a NAD of that name is already in the cluster, ClusterError
    when the cluster cannot be reached. In every one of these cases nothing is left created or
    stored."""
    teams.check_acting(user, team)
    namespace = (request.get("namespace") or "").strip()
    if namespace:  # no namespace at all is the dry run's error, on its field
        teams.check_apply(user, team, namespace)
    result = render(user=user, team=team, **request)
    if not result.ok:
        raise NadRefused(result)
    # The builder refuses two interfaces on one node, so the node names a NAD's interface.
    chosen = _interfaces(request["interface_ids"])
    interfaces = {i.node.name: i for i in chosen}
    cluster = request_cluster(chosen, request.get("cluster", ""))
    # The process's client for that cluster (shared with its sweeps: never closed here).
    client = client or cluster_clients.cluster_client(cluster)
    created: list[tuple[nad.RenderedNad, NadInfo]] = []
    for rendered in result.nads:
        try:
            info = client.create_nad(
                namespace=rendered.namespace,
                name=rendered.name,
                config=rendered.config_json,
                annotations=rendered.annotations,
            )
        except NadExists:
            _undo(client, created)
            raise Conflict(
                f"NAD {rendered.namespace}/{rendered.name} already exists in the cluster: "
                "choose another name or delete it first."
            ) from None
        except ClusterError:
            _undo(client, created)
            raise
        created.append((rendered, info))
    try:
        return _store(
            cluster=cluster,
            created=created,
            interfaces=interfaces,
            user=user,
            team=team,
        )
    except Exception:
        _undo(client, created)
        raise


def _undo(client: ClusterClient, created: list[tuple[nad.RenderedNad, NadInfo]]) -> None:
    """Delete the NADs this call created. Best effort: a failure here is logged with the names
    so that an operator can delete them by hand; the original error is what the caller sees."""
    for rendered, _info in reversed(created):
        try:
            client.delete_nad(rendered.namespace, rendered.name)
        except ClusterError as exc:
            log.error(
                "could not delete NAD %s/%s after a failed apply: %s",
                rendered.namespace,
                rendered.name,
                exc,
            )


def _store(
    *,
    cluster: Cluster,
    created: list[tuple[nad.RenderedNad, NadInfo]],
    interfaces: Mapping[str, Interface],
    user: Any,
    team: Group | None = None,
) -> list[NetworkAttachment]:
    actor = user if getattr(user, "is_authenticated", False) else None
    rows = []
    with transaction.atomic():
        for rendered, info in created:
            row, _ = NetworkAttachment.objects.update_or_create(
                cluster=cluster,
                namespace=rendered.namespace,
                name=rendered.name,
                # A row may be left from a NAD of that name deleted from the cluster earlier
                # (sync marks it in_cluster=False): this apply is the new one.
                defaults={
                    "uid": (info.uid or "")[:64],
                    "config": rendered.config_json,
                    "annotations": dict(rendered.annotations),
                    "resource_name": info.resource_name or "",
                    "origin": NadOrigin.PORTAL,
                    "in_cluster": True,
                    "applied_by": actor,
                    "team": team,
                    "findings": _lint_findings(cluster, rendered, team),
                },
            )
            rows.append(row)
            used = [interfaces[node] for node in rendered.nodes if node in interfaces]
            labels = ", ".join(map(str, used))
            who = actor.get_username() if actor is not None else "the system"
            audit.record(
                HistoryKind.NAD_APPLY,
                message=(
                    f"{who} applied NAD {rendered.namespace}/{rendered.name}"
                    + (f" for team {team.name}" if team is not None else "")
                    + (f" ({labels})" if used else "")
                ),
                actor=actor,
                team=team,
                interface=used[0] if len(used) == 1 else None,
                node=used[0].node if len(used) == 1 else None,
                data={
                    "namespace": rendered.namespace,
                    "name": rendered.name,
                    "nodes": list(rendered.nodes),
                    "interfaces": [i.pk for i in used],
                    "config": rendered.config_json,
                    "yaml": rendered.yaml,
                    "pod_snippet": rendered.pod_snippet,
                    "network_attachment": row.pk,
                },
            )
    return rows


def _lint_findings(
    cluster: Cluster, rendered: nad.RenderedNad, team: Group | None
) -> list[dict[str, str]]:
    """The findings the sweep's linter will store for this NAD (sync.lint_cluster_nads), so the
    list page shows the same thing before and after the next sweep."""
    nodes = facts.cluster_nodes(cluster)
    return [
        f.as_dict()
        for f in nad.lint(
            namespace=rendered.namespace,
            name=rendered.name,
            config=rendered.config_json,
            annotations=rendered.annotations,
            devices_by_node=facts.devices_by_node(nodes),
            plugins_by_node=facts.plugins_by_node(nodes),
            multus_version=facts.multus_version_for(cluster),
            team=team.name if team is not None else "",
        )
    ]
