"""Reservation requests: ask for capacity, not for a NIC. Shared by the UI and the API.

`preview` matches a request against the inventory and changes nothing (the form's live count,
the API's dry run). `submit` matches it, reserves the NICs it picked for the team, all or none,
records the request (granted or refused) with its history, and hands back the NADs (one per
slot, see rules/capacity.slots; the builder makes one per node where selectors must be node
specific) and the pod placement that uses them.

A request asks one cluster (docs/CLUSTERS.md): the one it names (`cluster`, a registry name),
else the default cluster. Only that cluster's NICs are matched, counted, offered as closest and
granted, and the NADs handed back are rendered for it. The request records another cluster's
name in its `constraints` (`cluster`); none recorded means the default cluster. A name the
registry does not hold is a ValidationError on `cluster`.

All or none, and never a NIC twice. Each attempt:
1. reads the free NICs as committed and lets the pure matcher pick (rules/capacity.py); a
   request the committed inventory cannot meet is refused, with the constraint that emptied the
   set: since nothing frees NICs during a request, a later read could not meet it either;
2. in one transaction, locks the picked interface rows in id order (SELECT ... FOR UPDATE on
   PostgreSQL; ordered, so two requests never wait on each other in a circle), then re-reads
   them and their active reservations: if another request or a single reservation took one
   since step 1, the transaction ends having written nothing and the request starts over;
3. creates the reservations, each guarded by the partial unique index
   `one_active_reservation_per_interface` as single reservations are: an insert that loses a race
   the lock did not see (SQLite takes no row locks) rolls the attempt back, and it starts over;
4. recomputes the NICs' verdicts and writes one history row per NIC and one for the request, in
   the same transaction.
An attempt only starts over because another one committed a reservation of a NIC it wanted, so
the attempts end; MAX_ATTEMPTS is a safety net that answers Conflict (nothing reserved).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from dataclasses import asdict
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, OperationalError, transaction
from django.utils import timezone

from inventory.choices import HistoryKind, RequestOutcome
from inventory.models import Cluster, Interface, Reservation, ReservationRequest
from inventory.read import capacity as inventory
from inventory.read import facts
from inventory.rules import capacity as rules
from inventory.rules.nad import names as nad_names
from inventory.services import audit, nads, reservations, teams
from inventory.services.errors import Conflict
from inventory.sync.verdicts import refresh_ownership

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 200
DEFAULT_NAMESPACE = "default"
RETRYABLE_PGCODES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure


def validate(constraints: rules.Constraints) -> None:
    """ValidationError keyed by request field unless the constraints can be matched."""
    problems = rules.constraint_problems(constraints)
    if problems:
        raise ValidationError(problems)


def chosen_cluster(cluster: str = "") -> Cluster | None:
    """The cluster a request asks (see the module docstring): None for the default cluster
    before its first sweep (it has no NICs then). ValidationError on `cluster` for a name the
    registry does not hold."""
    return facts.chosen_cluster(cluster)


def recorded_cluster(cluster: Cluster | None) -> str:
    """The cluster name a request records: "" for the default cluster (see request_cluster)."""
    if cluster is None or cluster.name == settings.CLUSTER_NAME:
        return ""
    return cluster.name


def preview(constraints: rules.Constraints, cluster: str = "") -> rules.Match:
    """What `submit` would pick now in `cluster` (a registry name; "" for the default one), or
    why it would refuse. Changes nothing."""
    problems = dict(rules.constraint_problems(constraints))
    try:
        where = chosen_cluster(cluster)
    except ValidationError as exc:
        problems.update(exc.message_dict)
    if problems:
        raise ValidationError(problems)
    return inventory.match(constraints, where)


def submit(
    *,
    user: Any,
    team: Group,
    constraints: rules.Constraints,
    purpose: str,
    expires_at: datetime,
    namespace: str = "",
    nad_name: str = "",
    cluster: str = "",
) -> ReservationRequest:
    """Match and reserve in `cluster` (a registry name; "" for the default one; see the module
    docstring). Returns the recorded request, granted or
    refused (`outcome`). Raises ValidationError (request fields), PermissionDenied when the user
    may not act for the team, Conflict when the attempts run out (nothing reserved)."""
    purpose = (purpose or "").strip()
    namespace = (namespace or "").strip() or DEFAULT_NAMESPACE
    nad_name = (nad_name or "").strip()
    errors: dict[str, list[str]] = dict(rules.constraint_problems(constraints))
    where: Cluster | None = None
    try:
        where = chosen_cluster(cluster)
    except ValidationError as exc:
        errors.update(exc.message_dict)
    if not purpose:
        errors["purpose"] = ["Say what the NICs are reserved for."]
    elif len(purpose) > reservations.PURPOSE_MAX_LENGTH:
        errors["purpose"] = [f"At most {reservations.PURPOSE_MAX_LENGTH} characters."]
    expiry = reservations.expiry_error(expires_at, after=timezone.now())
    if expiry:
        errors["expires_at"] = [expiry]
    problem = nad_names.dns1123_label_problem(namespace)
    if problem:
        errors["namespace"] = [f"Not a DNS-1123 label: {problem}; {nad_names.DNS1123_LABEL_RULE}."]
    if nad_name:
        problem = nad_names.dns1123_subdomain_problem(nad_name)
        if problem:
            errors["nad_name"] = [
                f"Not a DNS-1123 subdomain: {problem}; {nad_names.DNS1123_SUBDOMAIN_RULE}."
            ]
    if errors:
        raise ValidationError(errors)
    teams.check_acting(user, team)

    ask = {
        "user": user,
        "team": team,
        "constraints": constraints,
        "purpose": purpose,
        "expires_at": expires_at,
        "namespace": namespace,
        "nad_name": nad_name,
        "cluster": where,
    }
    for _attempt in range(MAX_ATTEMPTS):
        match = inventory.match(constraints, where)
        if not match.ok:
            return _refuse(match, **ask)
        try:
            granted = _grant(match, **ask)
        except OperationalError as exc:
            # A deadlock PostgreSQL broke (the verdicts of a node's other NICs written by two
            # requests at once) rolled the attempt back: nothing was written, start over.
            if getattr(exc.__cause__, "pgcode", None) not in RETRYABLE_PGCODES:
                raise
            log.info("reservation request attempt rolled back: %s", exc)
            continue
        if granted is not None:
            _hand_out(granted, user=user, team=team, cluster=where)
            return granted
    raise Conflict(
        f"The NICs matching this request kept being reserved by others ({MAX_ATTEMPTS} attempts); "
        "nothing was reserved. Try again."
    )


def release(*, request_id: int, user: Any, reason: str = "released") -> ReservationRequest:
    """Release every NIC a granted request still holds, all or none (see
    reservations.release_many), with one history row per NIC and one for the request. Raises
    Conflict when it holds none (refused, or every reservation already ended) and
    PermissionDenied when the user may not change the team's reservations."""
    request = ReservationRequest.objects.select_related("team").get(pk=request_id)
    ids = list(request.reservations.values_list("pk", flat=True))
    if not ids:
        raise Conflict(f"Request {request.pk} was refused: it holds no NIC.")
    with transaction.atomic():
        released = reservations.release_many(
            reservation_ids=ids, user=user, reason=reason, note=f"(request {request.pk})"
        )
        nics = ", ".join(reservations.label_of(r.interface) for r in released)
        audit.record(
            HistoryKind.REQUEST,
            message=(
                f"request {request.pk} of team {request.team.name}: {len(released)} NIC(s) "
                f"released by {user.get_username()}: {nics}"
            ),
            actor=user,
            team=request.team,
            data={
                "request": request.pk,
                "released": [r.interface_id for r in released],
                "reason": reason,
            },
        )
    return request


def constraints_dict(constraints: rules.Constraints, cluster: str = "") -> dict[str, Any]:
    """The constraints as stored and shown: the fields that narrow something, and the cluster
    asked when it is not the default one (its name)."""
    defaults = rules.Constraints()
    stored = {
        key: list(value) if isinstance(value, tuple) else value
        for key, value in asdict(constraints).items()
        if key == "count" or value != getattr(defaults, key)
    }
    if cluster:
        stored["cluster"] = cluster
    return stored


def request_cluster(request: ReservationRequest) -> str:
    """The name of the cluster a recorded request asked: the default cluster when it records
    none."""
    stored = request.constraints if isinstance(request.constraints, dict) else {}
    return str(stored.get("cluster") or settings.CLUSTER_NAME)


# --- the attempt ------------------------------------------------------------------------------


def _grant(
    match: rules.Match,
    *,
    user: Any,
    team: Group,
    constraints: rules.Constraints,
    purpose: str,
    expires_at: datetime,
    namespace: str,
    nad_name: str,
    cluster: Cluster | None,
) -> ReservationRequest | None:
    """Reserve the picked NICs in one transaction; None when one of them was taken since the
    match (nothing is written then)."""
    ids = sorted(nic.id for nic in match.picked)
    if len(set(ids)) != constraints.count:  # never: the matcher places the whole count
        return None
    with transaction.atomic():
        locked = list(
            Interface.objects.select_for_update(of=("self",))
            .select_related("node")
            .filter(pk__in=ids, present=True, state__in=inventory.FREE_STATES)
            .order_by("pk")
        )
        taken = Reservation.objects.filter(interface_id__in=ids, released_at__isnull=True)
        if len(locked) != len(ids) or taken.exists():
            return None
        try:
            with transaction.atomic():  # a savepoint: the insert that lost a race undoes all
                made = [
                    Reservation.objects.create(
                        interface=interface,
                        team=team,
                        created_by=user,
                        purpose=purpose,
                        expires_at=expires_at,
                    )
                    for interface in locked
                ]
        except IntegrityError:
            return None
        request = ReservationRequest.objects.create(
            team=team,
            created_by=user,
            purpose=purpose,
            expires_at=expires_at,
            count=constraints.count,
            constraints=constraints_dict(constraints, recorded_cluster(cluster)),
            outcome=RequestOutcome.GRANTED,
            steps=[step.as_dict() for step in match.steps],
            namespace=namespace,
            nad_name=nad_name,
        )
        if not nad_name:
            request.nad_name = f"request-{request.pk}"
            request.save(update_fields=["nad_name"])
        request.reservations.set(made)
        old_states = {interface.pk: interface.state for interface in locked}
        refresh_ownership(interface_ids=ids, recorded_by_caller=True)
        new_states = dict(Interface.objects.filter(pk__in=ids).values_list("pk", "state"))
        who = user.get_username()
        until = reservations.when(expires_at)
        for interface, reservation in zip(locked, made, strict=True):
            audit.record(
                HistoryKind.RESERVE,
                message=(
                    f"{reservations.label_of(interface)} reserved by {who} for team "
                    f"{team.name} until {until} (request {request.pk}): {purpose}"
                ),
                actor=user,
                team=team,
                interface=interface,
                data={
                    "reservation": reservation.pk,
                    "request": request.pk,
                    "until": expires_at.isoformat(),
                    "purpose": purpose,
                },
                old_state=old_states[interface.pk],
                new_state=new_states.get(interface.pk, ""),
            )
        nics = ", ".join(reservations.label_of(i) for i in locked)
        audit.record(
            HistoryKind.REQUEST,
            message=(
                f"request {request.pk} by {who} for team {team.name} granted "
                f"{len(locked)} NIC(s) until {until}: {nics}"
            ),
            actor=user,
            team=team,
            node=locked[0].node if len({i.node_id for i in locked}) == 1 else None,
            data={"request": request.pk, "interfaces": ids, "outcome": RequestOutcome.GRANTED},
        )
        for node_id in sorted({i.node_id for i in locked}):
            _publish_after_commit(node_id)
    return request


def _refuse(
    match: rules.Match,
    *,
    user: Any,
    team: Group,
    constraints: rules.Constraints,
    purpose: str,
    expires_at: datetime,
    namespace: str,
    nad_name: str,
    cluster: Cluster | None,
) -> ReservationRequest:
    with transaction.atomic():
        request = ReservationRequest.objects.create(
            team=team,
            created_by=user,
            purpose=purpose,
            expires_at=expires_at,
            count=constraints.count,
            constraints=constraints_dict(constraints, recorded_cluster(cluster)),
            outcome=RequestOutcome.REFUSED,
            explanation=match.explanation,
            steps=[step.as_dict() for step in match.steps],
            closest=[near.as_dict() for near in match.closest],
            namespace=namespace,
            nad_name=nad_name,
        )
        audit.record(
            HistoryKind.REQUEST,
            message=(
                f"request {request.pk} by {user.get_username()} for team {team.name} refused: "
                f"{match.explanation}"
            ),
            actor=user,
            team=team,
            data={
                "request": request.pk,
                "outcome": RequestOutcome.REFUSED,
                "failed": match.failed_step.field if match.failed_step else "",
            },
        )
    return request


def _publish_after_commit(node_id: int) -> None:
    transaction.on_commit(lambda: reservations.publish_node_reservations(node_id=node_id))


# --- the hand-out -----------------------------------------------------------------------------


def _hand_out(
    request: ReservationRequest, *, user: Any, team: Group, cluster: Cluster | None
) -> None:
    """Render the NADs of the granted NICs (one per slot; the builder splits a slot per node
    where it must) for the request's cluster and the pod placement that uses them, and keep
    them on the request. Nothing
    is applied to the cluster: the NAD builder or kubectl does that. A slot the builder refuses
    (no host-device on a node, …) leaves its findings instead; the reservations stand."""
    granted = list(
        request.reservations.select_related("interface__node").order_by(
            "interface__node_name", "interface__name", "interface_id"
        )
    )
    picked = [
        rules.Candidate(id=r.interface_id, node=r.interface.node_name, name=r.interface.name)
        for r in granted
    ]
    slots = rules.slots(picked)
    rendered, findings, pod_interfaces = [], [], []
    networks: dict[str, list[str]] = defaultdict(list)
    for index, slot in enumerate(slots, start=1):
        name = request.nad_name if len(slots) == 1 else f"{request.nad_name}-{index}"
        pod_interface = f"net{index}"
        try:
            result = nads.render(
                user=user,
                team=team,
                namespace=request.namespace,
                name=name,
                interface_ids=[nic.id for nic in slot],
                pod_interface=pod_interface,
                other_pod_interfaces=pod_interfaces,
                cluster=cluster.name if cluster is not None else "",
            )
        except (ValidationError, PermissionDenied) as exc:
            # The reservations are made; a NAD that cannot be rendered is said, not raised.
            text = " ".join(exc.messages if isinstance(exc, ValidationError) else [str(exc)])
            findings.append({"slot": index, "code": "NAD_NOT_RENDERED", "severity": "error",
                             "field": "", "message": text, "fix": ""})  # fmt: skip
            continue
        finally:
            pod_interfaces.append(pod_interface)
        findings += [{"slot": index, **finding.as_dict()} for finding in result.findings]
        for nad in result.nads:
            rendered.append(
                dict(namespace=nad.namespace, name=nad.name, nodes=list(nad.nodes), yaml=nad.yaml)
            )
            for node in nad.nodes:
                networks[node].append(f"{nad.namespace}/{nad.name}@{pod_interface}")
    request.nads = rendered
    request.nad_findings = findings
    request.pod_snippet = rules.pod_placement(networks) if networks else ""
    request.save(update_fields=["nads", "nad_findings", "pod_snippet"])
