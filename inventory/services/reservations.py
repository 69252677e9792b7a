"""Team-wide NIC reservations: reserve, extend, release, expire. Shared by the UI, the API and
the expiry task; every action writes its history row in the same transaction as the change.

Concurrency. Two people reserving the same NIC at the same moment must not both win:
- the interface row is locked (SELECT ... FOR UPDATE on PostgreSQL) before its state and its
  active reservation are read, so concurrent reserves of one NIC queue up and the later ones see
  the winner's reservation once it commits (READ COMMITTED re-reads after the lock wait);
- the partial unique index `one_active_reservation_per_interface` is the real guard: if anything
  slips past the lock (SQLite, a writer that did not lock), the INSERT fails, and that
  IntegrityError becomes the same Conflict naming the holder.

After reserve/release/expire the interface's ownership verdict is recomputed in the same
transaction (`inventory.sync.verdicts.refresh_ownership`), so the state a reader sees never
disagrees with the reservations table. The node's active reservations are then published as the
Node annotation `nicportal.io/reservations` once the transaction has committed: a cluster outage
must not undo a reservation, so cluster errors are logged, and `publish_node_reservations` can be
re-run by a task.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from inventory.choices import HistoryKind, OwnershipState
from inventory.models import Interface, Node, Reservation
from inventory.services import audit, cluster_clients, teams
from inventory.services.errors import Conflict
from inventory.sync.verdicts import refresh_ownership

log = logging.getLogger(__name__)

ANNOTATION_KEY = "nicportal.io/reservations"
PURPOSE_MAX_LENGTH = Reservation._meta.get_field("purpose").max_length
RELEASE_REASON_MAX_LENGTH = Reservation._meta.get_field("release_reason").max_length


def reserve(
    *, interface_id: int, team: Group, user: Any, purpose: str, expires_at: datetime
) -> Reservation:
    """Reserve a free interface for `team` until `expires_at`.

    Raises ValidationError (fields `interface`, `purpose`, `expires_at`), PermissionDenied when
    the user may not act for the team, Conflict when the NIC is held or not free."""
    purpose = (purpose or "").strip()
    errors: dict[str, list[str]] = {}
    if not purpose:
        errors["purpose"] = ["Say what the NIC is reserved for."]
    elif len(purpose) > PURPOSE_MAX_LENGTH:
        errors["purpose"] = [f"At most {PURPOSE_MAX_LENGTH} characters."]
    expiry = expiry_error(expires_at, after=timezone.now())
    if expiry:
        errors["expires_at"] = [expiry]
    if errors:
        raise ValidationError(errors)
    teams.check_acting(user, team)

    with transaction.atomic():
        try:
            interface = (
                Interface.objects.select_for_update(of=("self",))
                .select_related("node")
                .get(pk=interface_id)
            )
        except Interface.DoesNotExist:
            raise ValidationError(
                {"interface": [f"No interface with id {interface_id}."]}
            ) from None
        held = _active_reservation(interface.pk)
        if held is not None:
            raise Conflict(_held_message(held), holder=held.team.name)
        # `reserved` with no active reservation is a verdict that has not caught up with a
        # release yet; the reservations table is the truth, so such a NIC may be reserved.
        if interface.state not in (OwnershipState.FREE, OwnershipState.RESERVED):
            raise Conflict(
                f"{_label(interface)} is {interface.get_state_display()}, not free: "
                f"{interface.reason or 'no reason recorded'}",
                holder=interface.holder or None,
            )
        try:
            with transaction.atomic():  # savepoint: the outer transaction survives a lost race
                reservation = Reservation.objects.create(
                    interface=interface,
                    team=team,
                    created_by=user,
                    purpose=purpose,
                    expires_at=expires_at,
                )
        except IntegrityError:
            held = _active_reservation(interface.pk)
            if held is None:
                raise
            raise Conflict(_held_message(held), holder=held.team.name) from None
        old_state = interface.state
        new_state = _refresh_ownership([interface.pk]).get(interface.pk, "")
        audit.record(
            HistoryKind.RESERVE,
            message=(
                f"{_label(interface)} reserved by {user.get_username()} for team {team.name} "
                f"until {when(expires_at)}: {purpose}"
            ),
            actor=user,
            team=team,
            interface=interface,
            data={
                "reservation": reservation.pk,
                "until": expires_at.isoformat(),
                "purpose": purpose,
            },
            old_state=old_state,
            new_state=new_state,
        )
        _publish_after_commit(interface.node_id)
    return reservation


def extend(*, reservation_id: int, user: Any, expires_at: datetime) -> Reservation:
    """Move an active reservation's end to a later `expires_at`. The NIC's state does not matter
    (a reserved NIC that went into a pod stays reserved)."""
    with transaction.atomic():
        reservation = _lock_reservation(reservation_id)
        _check_may_manage(user, reservation)
        if not reservation.active:
            raise Conflict(_released_message(reservation), holder=reservation.team.name)
        error = expiry_error(expires_at, after=max(timezone.now(), reservation.expires_at))
        if error:
            if expires_at > timezone.now() and expires_at <= reservation.expires_at:
                error = f"Must be later than the current end, {when(reservation.expires_at)}."
            raise ValidationError({"expires_at": [error]})
        previous = reservation.expires_at
        reservation.expires_at = expires_at
        reservation.save(update_fields=["expires_at"])
        audit.record(
            HistoryKind.EXTEND,
            message=(
                f"reservation of {_label(reservation.interface)} for team {reservation.team.name} "
                f"extended by {user.get_username()} from {when(previous)} to {when(expires_at)}"
            ),
            actor=user,
            team=reservation.team,
            interface=reservation.interface,
            data={
                "reservation": reservation.pk,
                "from": previous.isoformat(),
                "until": expires_at.isoformat(),
            },
        )
        _publish_after_commit(reservation.interface.node_id)
    return reservation


def release(*, reservation_id: int, user: Any, reason: str = "released") -> Reservation:
    """End an active reservation now; the NIC becomes free again (unless something else holds
    it)."""
    reason = (reason or "released").strip()[:RELEASE_REASON_MAX_LENGTH] or "released"
    with transaction.atomic():
        reservation = _lock_reservation(reservation_id)
        _check_may_manage(user, reservation)
        if not reservation.active:
            raise Conflict(_released_message(reservation), holder=reservation.team.name)
        _end(reservation, at=timezone.now(), by=user, reason=reason)
        interface = reservation.interface
        old_state = interface.state
        new_state = _refresh_ownership([interface.pk]).get(interface.pk, "")
        audit.record(
            HistoryKind.RELEASE,
            message=(
                f"reservation of {_label(interface)} for team {reservation.team.name} "
                f"released by {user.get_username()}: {reason}"
            ),
            actor=user,
            team=reservation.team,
            interface=interface,
            data={"reservation": reservation.pk, "reason": reason},
            old_state=old_state,
            new_state=new_state,
        )
        _publish_after_commit(interface.node_id)
    return reservation


def release_many(
    *, reservation_ids: list[int], user: Any, reason: str = "released", note: str = ""
) -> list[Reservation]:
    """End every still active reservation of `reservation_ids` now, all or none: the user must
    be allowed to change each (PermissionDenied otherwise, nothing released). Those already
    released are left as they are; Conflict when none is active. `note` ends each history
    message ("(request 12)"). Returns the reservations it released, in id order."""
    reason = (reason or "released").strip()[:RELEASE_REASON_MAX_LENGTH] or "released"
    with transaction.atomic():
        locked = list(
            Reservation.objects.select_for_update(of=("self",))
            .select_related("interface__node", "team", "created_by", "released_by")
            .filter(pk__in=reservation_ids)
            .order_by("pk")
        )
        active = [reservation for reservation in locked if reservation.active]
        if not active:
            raise Conflict("Nothing to release: every one of these reservations has ended.")
        for reservation in active:
            _check_may_manage(user, reservation)
        now = timezone.now()
        old_states = {r.interface_id: r.interface.state for r in active}
        for reservation in active:
            _end(reservation, at=now, by=user, reason=reason)
        new_states = _refresh_ownership(sorted(old_states))
        suffix = f" {note}" if note else ""
        for reservation in active:
            interface = reservation.interface
            audit.record(
                HistoryKind.RELEASE,
                message=(
                    f"reservation of {_label(interface)} for team {reservation.team.name} "
                    f"released by {user.get_username()}{suffix}: {reason}"
                ),
                actor=user,
                team=reservation.team,
                interface=interface,
                data={"reservation": reservation.pk, "reason": reason},
                old_state=old_states[interface.pk],
                new_state=new_states.get(interface.pk, ""),
            )
        for node_id in sorted({r.interface.node_id for r in active}):
            _publish_after_commit(node_id)
    return active


def expire_due(*, now: datetime | None = None) -> int:
    """Release every active reservation whose end is at or before `now` (reason "expired").
    Returns how many were released. Idempotent: a second run finds nothing due."""
    now = now or timezone.now()
    with transaction.atomic():
        # skip_locked: a reservation being released or extended right now is left to that
        # transaction; the next run (every minute) sees it again if it is still due.
        due = list(
            Reservation.objects.select_for_update(of=("self",), skip_locked=True)
            .select_related("interface__node", "team", "created_by")
            .filter(released_at__isnull=True, expires_at__lte=now)
            .order_by("pk")
        )
        if not due:
            return 0
        for reservation in due:
            _end(reservation, at=now, by=None, reason="expired")
        new_states = _refresh_ownership(sorted({r.interface_id for r in due}))
        for reservation in due:
            interface = reservation.interface
            audit.record(
                HistoryKind.EXPIRE,
                message=(
                    f"reservation of {_label(interface)} for team {reservation.team.name} "
                    f"(by {reservation.created_by.get_username()}) expired at "
                    f"{when(reservation.expires_at)}"
                ),
                team=reservation.team,
                interface=interface,
                data={"reservation": reservation.pk, "until": reservation.expires_at.isoformat()},
                old_state=interface.state,
                new_state=new_states.get(interface.pk, ""),
            )
        for node_id in sorted({r.interface.node_id for r in due}):
            _publish_after_commit(node_id)
    return len(due)


def node_reservations(node_id: int) -> list[dict[str, str]]:
    """The node's active reservations as published in the Node annotation."""
    rows = (
        Reservation.objects.filter(interface__node_id=node_id, released_at__isnull=True)
        .select_related("interface", "team", "created_by")
        .order_by("interface__name", "pk")
    )
    return [
        {
            "interface": r.interface.name,
            "identity": r.interface.identity,
            "team": r.team.name,
            "until": r.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "purpose": r.purpose,
            "by": r.created_by.get_username(),
        }
        for r in rows
    ]


def publish_node_reservations(*, node_id: int) -> bool:
    """Write the node's active reservations to its `nicportal.io/reservations` annotation (the
    key is removed when there are none). Returns whether the cluster accepted it; cluster errors
    are logged, never raised, so a task can simply call this again later."""
    node = Node.objects.select_related("cluster").filter(pk=node_id).first()
    if node is None:
        return False
    # Each node is annotated in its own cluster (the registry's client for it); nodes of a
    # cluster the portal cannot reach (no credentials registered) or gone from the API have no
    # Node object to annotate.
    if not cluster_clients.is_registered(node.cluster) or not node.in_cluster:
        log.info(
            "annotation not published node=%s cluster=%s: not a registered cluster's node",
            node.name,
            node.cluster.name,
        )
        return False
    reservations = node_reservations(node.pk)
    value = json.dumps(reservations, separators=(",", ":")) if reservations else None
    try:
        client = cluster_clients.cluster_client(node.cluster)
        client.set_node_annotation(node.name, ANNOTATION_KEY, value)
    # Any failure (API down, RBAC, timeout, no cluster configured) must not fail the user's
    # action, which has already committed; the annotation is re-published by the next run.
    except Exception:
        log.warning(
            "annotation publish failed node=%s key=%s", node.name, ANNOTATION_KEY, exc_info=True
        )
        return False
    return True


# --- helpers ---------------------------------------------------------------------------------


def _refresh_ownership(interface_ids: list[int]) -> dict[int, str]:
    """Recompute the verdicts of these interfaces inside the caller's transaction and return
    their new states. The ownership engine and its writer are sync's; no fallback here: a
    reservation whose state is not recomputed would show a free NIC as free."""
    # The caller's audit row records the change (who, why, old -> new state): once, not twice.
    refresh_ownership(interface_ids=list(interface_ids), recorded_by_caller=True)
    return dict(Interface.objects.filter(pk__in=interface_ids).values_list("pk", "state"))


def _publish_after_commit(node_id: int) -> None:
    transaction.on_commit(lambda: publish_node_reservations(node_id=node_id))


def _lock_reservation(reservation_id: int) -> Reservation:
    return (
        Reservation.objects.select_for_update(of=("self",))
        .select_related("interface__node", "team", "created_by", "released_by")
        .get(pk=reservation_id)
    )


def _check_may_manage(user: Any, reservation: Reservation) -> None:
    # The creator always may (even after leaving the team); otherwise team members and staff.
    if getattr(user, "is_authenticated", False) and reservation.created_by_id == user.pk:
        return
    if not teams.can_act_for(user, reservation.team):
        raise PermissionDenied(
            f"Only members of team {reservation.team.name} can change this reservation."
        )


def _end(reservation: Reservation, *, at: datetime, by: Any, reason: str) -> None:
    reservation.released_at = at
    reservation.released_by = by
    reservation.release_reason = reason
    reservation.save(update_fields=["released_at", "released_by", "release_reason"])


def _active_reservation(interface_id: int) -> Reservation | None:
    return (
        Reservation.objects.filter(interface_id=interface_id, released_at__isnull=True)
        .select_related("team", "created_by", "interface__node")
        .first()
    )


def expiry_error(expires_at: Any, *, after: datetime) -> str:
    if not isinstance(expires_at, datetime):
        return "A date and time is required."
    if timezone.is_naive(expires_at):
        return "Give a time zone (for example 2030-01-31T18:00:00Z)."
    if expires_at <= after:
        return f"Must be in the future (after {when(after)})."
    return ""


def label_of(interface: Interface) -> str:
    """node/name as the history writes it."""
    return _label(interface)


def _label(interface: Interface) -> str:
    return str(interface)  # node/name, a nameless VF by its PCI address


def when(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _held_message(held: Reservation) -> str:
    return (
        f"{_label(held.interface)} is already reserved by team {held.team.name} "
        f"({held.created_by.get_username()}, until {when(held.expires_at)}): {held.purpose}"
    )


def _released_message(reservation: Reservation) -> str:
    by = reservation.released_by.get_username() if reservation.released_by else "the portal"
    return (
        f"This reservation was already released ({reservation.release_reason or 'released'}, "
        f"by {by} at {when(reservation.released_at)})."
    )
