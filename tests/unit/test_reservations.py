"""Reservation workflows (inventory.services.reservations) against the database: permissions,
conflicts, validation, history and the ownership verdict after each action."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from inventory.choices import HistoryKind, OwnershipState
from inventory.models import HistoryEntry, Interface, Reservation
from inventory.services import reservations
from inventory.services.errors import Conflict
from tests.api.builders import in_days, make_free_interface, make_node, make_people

pytestmark = pytest.mark.django_db


@pytest.fixture
def people():
    return make_people()


@pytest.fixture
def nic():
    return make_free_interface(make_node("node-a"), "ens1f0")


def reserve(nic, people, user=None, team=None, days=1.0, purpose="SR-IOV tests"):
    return reservations.reserve(
        interface_id=nic.pk,
        team=team or people.team,
        user=user or people.owner,
        purpose=purpose,
        expires_at=in_days(days),
    )


def test_it_reserves_a_free_nic_and_records_who_when_what(people, nic):
    reservation = reserve(nic, people)

    assert reservation.active and reservation.team == people.team
    nic.refresh_from_db()
    assert nic.state == OwnershipState.RESERVED
    assert "netlab" in nic.holder
    entry = HistoryEntry.objects.get(kind=HistoryKind.RESERVE)
    assert (entry.actor, entry.team, entry.interface, entry.node) == (
        people.owner,
        people.team,
        nic,
        nic.node,
    )
    assert "SR-IOV tests" in entry.message and entry.data["reservation"] == reservation.pk
    assert (entry.old_state, entry.new_state) == ("free", "reserved")


def test_it_refuses_a_second_reservation_naming_the_holder_team(people, nic):
    reserve(nic, people)
    with pytest.raises(Conflict) as caught:
        reserve(nic, people, user=people.outsider, team=people.other_team)
    assert caught.value.holder == "netlab"
    assert "netlab" in str(caught.value) and "olivia" in str(caught.value)
    assert Reservation.objects.filter(released_at__isnull=True).count() == 1


def test_it_refuses_a_nic_that_is_not_free(people, nic):
    Interface.objects.filter(pk=nic.pk).update(
        state=OwnershipState.SYSTEM, reason="carries the default route", holder="node"
    )
    with pytest.raises(Conflict, match="default route"):
        reserve(nic, people)
    assert not Reservation.objects.exists()


def test_it_refuses_a_team_the_user_is_not_in(people, nic):
    with pytest.raises(PermissionDenied, match="storage"):
        reserve(nic, people, user=people.owner, team=people.other_team)
    assert not Reservation.objects.exists() and not HistoryEntry.objects.exists()


def test_staff_can_reserve_for_any_team(people, nic):
    reservation = reserve(nic, people, user=people.staff, team=people.other_team)
    assert reservation.team == people.other_team and reservation.created_by == people.staff


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("purpose", {"purpose": "   "}),
        ("purpose", {"purpose": "x" * 501}),
        ("expires_at", {"expires_at": timezone.now() - timedelta(minutes=1)}),
        ("expires_at", {"expires_at": timezone.now().replace(tzinfo=None) + timedelta(days=1)}),
        ("interface", {"interface_id": 999_999}),
    ],
)
def test_it_rejects_bad_input_naming_the_field(people, nic, field, kwargs):
    arguments = {
        "interface_id": nic.pk,
        "team": people.team,
        "user": people.owner,
        "purpose": "tests",
        "expires_at": in_days(1),
        **kwargs,
    }
    with pytest.raises(ValidationError) as caught:
        reservations.reserve(**arguments)
    assert field in caught.value.message_dict


def test_a_team_mate_can_extend_and_release(people, nic):
    reservation = reserve(nic, people)
    later = in_days(3)
    reservations.extend(reservation_id=reservation.pk, user=people.mate, expires_at=later)
    reservation.refresh_from_db()
    assert reservation.expires_at == later

    reservations.release(reservation_id=reservation.pk, user=people.mate, reason="done")
    reservation.refresh_from_db()
    nic.refresh_from_db()
    assert reservation.released_by == people.mate and reservation.release_reason == "done"
    assert nic.state == OwnershipState.FREE
    # One row per action: the reserve and release rows carry the state change themselves.
    rows = list(HistoryEntry.objects.order_by("id").values_list("kind", "old_state", "new_state"))
    assert rows == [
        ("reserve", "free", "reserved"),
        ("extend", "", ""),
        ("release", "reserved", "free"),
    ]


def test_an_outsider_can_neither_extend_nor_release(people, nic):
    reservation = reserve(nic, people)
    with pytest.raises(PermissionDenied):
        reservations.extend(
            reservation_id=reservation.pk, user=people.outsider, expires_at=in_days(5)
        )
    with pytest.raises(PermissionDenied):
        reservations.release(reservation_id=reservation.pk, user=people.outsider)
    reservation.refresh_from_db()
    assert reservation.active


def test_the_creator_can_release_after_leaving_the_team(people, nic):
    reservation = reserve(nic, people)
    people.owner.groups.clear()
    reservations.release(reservation_id=reservation.pk, user=people.owner)
    reservation.refresh_from_db()
    assert not reservation.active


def test_staff_can_release_any_reservation(people, nic):
    reservation = reserve(nic, people)
    reservations.release(reservation_id=reservation.pk, user=people.staff)
    reservation.refresh_from_db()
    assert reservation.released_by == people.staff


def test_it_refuses_to_extend_to_an_earlier_end(people, nic):
    reservation = reserve(nic, people, days=3)
    with pytest.raises(ValidationError) as caught:
        reservations.extend(reservation_id=reservation.pk, user=people.owner, expires_at=in_days(2))
    assert "later than the current end" in caught.value.message_dict["expires_at"][0]


def test_it_refuses_to_release_or_extend_a_released_reservation(people, nic):
    reservation = reserve(nic, people)
    reservations.release(reservation_id=reservation.pk, user=people.owner)
    with pytest.raises(Conflict, match="already released"):
        reservations.release(reservation_id=reservation.pk, user=people.owner)
    with pytest.raises(Conflict, match="already released"):
        reservations.extend(reservation_id=reservation.pk, user=people.owner, expires_at=in_days(9))


def test_a_released_nic_can_be_reserved_again_by_another_team(people, nic):
    first = reserve(nic, people)
    reservations.release(reservation_id=first.pk, user=people.owner)
    second = reserve(nic, people, user=people.outsider, team=people.other_team)
    assert second.active and second.team == people.other_team


def test_a_reservation_survives_its_nic_going_into_a_pod(people, nic):
    reservation = reserve(nic, people, days=1)
    # The NIC was handed to a pod (sync's verdict); the reservation stays and can be extended.
    Interface.objects.filter(pk=nic.pk).update(state=OwnershipState.POD, holder="default/web")
    reservations.extend(reservation_id=reservation.pk, user=people.owner, expires_at=in_days(2))
    assert reservations.expire_due(now=timezone.now()) == 0
    reservation.refresh_from_db()
    assert reservation.active


def test_expire_due_releases_only_reservations_past_their_end(people):
    node = make_node("node-b")
    due_nic, later_nic = make_free_interface(node, "ens2f0"), make_free_interface(node, "ens2f1")
    due = reserve(due_nic, people, days=1)
    later = reserve(later_nic, people, days=3)
    fixed_now = timezone.now() + timedelta(days=2)

    assert reservations.expire_due(now=fixed_now) == 1
    assert reservations.expire_due(now=fixed_now) == 0  # idempotent

    due.refresh_from_db()
    later.refresh_from_db()
    assert (due.released_at, due.release_reason, due.released_by) == (fixed_now, "expired", None)
    assert later.active
    due_nic.refresh_from_db()
    assert due_nic.state == OwnershipState.FREE
    entry = HistoryEntry.objects.get(kind=HistoryKind.EXPIRE)
    assert entry.interface == due_nic and entry.team == people.team and entry.actor is None
    # Each reservation once in the NIC's history: no ownership row besides the action's.
    rows = HistoryEntry.objects.filter(interface=due_nic).order_by("id")
    assert list(rows.values_list("kind", "old_state", "new_state")) == [
        ("reserve", "free", "reserved"),
        ("expire", "reserved", "free"),
    ]


def test_node_reservations_lists_the_active_ones_for_the_annotation(people):
    node = make_node("node-c")
    first, second = make_free_interface(node, "ens3f0"), make_free_interface(node, "ens3f1")
    kept = reserve(first, people, purpose="dpdk")
    released = reserve(second, people)
    reservations.release(reservation_id=released.pk, user=people.owner)

    assert reservations.node_reservations(node.pk) == [
        {
            "interface": "ens3f0",
            "identity": first.identity,
            "team": "netlab",
            "until": kept.expires_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
            "purpose": "dpdk",
            "by": "olivia",
        }
    ]


def test_the_annotation_is_published_only_after_commit(
    people, nic, monkeypatch, django_capture_on_commit_callbacks
):
    published = []
    monkeypatch.setattr(
        reservations, "publish_node_reservations", lambda *, node_id: published.append(node_id)
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        reserve(nic, people)
    assert published == [] and len(callbacks) == 1
    callbacks[0]()
    assert published == [nic.node_id]


def test_publishing_logs_cluster_errors_instead_of_raising(people, nic, settings, tmp_path, caplog):
    settings.KUBECONFIG = str(tmp_path / "missing-kubeconfig")
    settings.KUBE_IN_CLUSTER = False
    reserve(nic, people)
    assert reservations.publish_node_reservations(node_id=nic.node_id) is False
    assert "annotation publish failed" in caplog.text
