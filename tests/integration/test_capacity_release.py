"""Releasing every NIC of a request at once (inventory.services.capacity.release): all or none,
one history row per NIC and one for the request; the request page's button and the team page's
list of requests."""

from __future__ import annotations

import pytest
from django.core.exceptions import PermissionDenied

from inventory.choices import HistoryKind, OwnershipState, RequestOutcome
from inventory.models import HistoryEntry, Interface, Reservation, ReservationRequest
from inventory.rules.capacity import Constraints
from inventory.services import capacity, reservations
from inventory.services.errors import Conflict
from tests.api.builders import in_days, make_free_interface, make_node, make_people

pytestmark = pytest.mark.django_db


@pytest.fixture
def granted(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")  # annotation publishing just logs
    settings.MULTUS_VERSION = ""
    people = make_people()
    a = make_node("node-a")
    b = make_node("node-b")
    for node, name in ((a, "ens1f0"), (a, "ens1f1"), (b, "eth1")):
        make_free_interface(node, name, speed_mbps=25000)
    request = capacity.submit(
        user=people.owner,
        team=people.team,
        constraints=Constraints(count=3),
        purpose="training",
        expires_at=in_days(2),
    )
    assert request.outcome == RequestOutcome.GRANTED
    return people, request


def held(request: ReservationRequest) -> int:
    return request.reservations.filter(released_at__isnull=True).count()


def test_every_nic_is_released_with_its_history_and_the_requests(granted):
    people, request = granted
    capacity.release(request_id=request.pk, user=people.mate, reason="done")
    assert held(request) == 0
    assert set(Interface.objects.values_list("state", flat=True)) == {OwnershipState.FREE}
    rows = HistoryEntry.objects.filter(kind=HistoryKind.RELEASE).order_by("id")
    assert len(rows) == 3
    assert all(f"released by mateo (request {request.pk}): done" in r.message for r in rows)
    assert {(r.old_state, r.new_state) for r in rows} == {("reserved", "free")}
    summary = HistoryEntry.objects.filter(kind=HistoryKind.REQUEST).order_by("-id").first()
    assert summary.message.startswith(f"request {request.pk} of team netlab: 3 NIC(s) released")
    assert "node-a/ens1f0, node-a/ens1f1, node-b/eth1" in summary.message
    every = sorted(Interface.objects.values_list("pk", flat=True))
    assert sorted(summary.data["released"]) == every


def test_only_what_is_still_held_is_released_and_then_nothing_is_left(granted):
    people, request = granted
    first = request.reservations.order_by("pk").first()
    reservations.release(reservation_id=first.pk, user=people.owner)
    capacity.release(request_id=request.pk, user=people.owner)
    assert held(request) == 0
    assert HistoryEntry.objects.filter(kind=HistoryKind.RELEASE).count() == 3  # 1 + 2
    with pytest.raises(Conflict, match="Nothing to release"):
        capacity.release(request_id=request.pk, user=people.owner)


def test_another_team_may_not_and_nothing_is_released(granted):
    people, request = granted
    with pytest.raises(PermissionDenied, match="Only members of team netlab"):
        capacity.release(request_id=request.pk, user=people.outsider)
    assert held(request) == 3
    assert not HistoryEntry.objects.filter(kind=HistoryKind.RELEASE).exists()
    capacity.release(request_id=request.pk, user=people.staff)  # staff may
    assert held(request) == 0


def test_a_refused_request_holds_nothing_to_release(granted):
    people, _ = granted
    refused = capacity.submit(
        user=people.owner,
        team=people.team,
        constraints=Constraints(count=1),
        purpose="more",
        expires_at=in_days(1),
    )
    assert refused.outcome == RequestOutcome.REFUSED
    with pytest.raises(Conflict, match="was refused"):
        capacity.release(request_id=refused.pk, user=people.owner)


def test_the_request_page_releases_all_after_a_confirmation(client, granted):
    people, request = granted
    client.force_login(people.owner)
    page = client.get(f"/requests/{request.pk}/").content.decode()
    assert 'data-testid="request-release-form"' in page
    assert (
        f"Release all 3 NICs team netlab holds through request {request.pk}? "
        "They become free for anyone to take." in page
    )
    response = client.post(f"/requests/{request.pk}/release/", follow=True)
    assert response.status_code == 200
    text = response.content.decode()
    assert f"Every NIC of request {request.pk} is released." in text
    assert 'data-testid="request-release-form"' not in text  # nothing left to release
    assert held(request) == 0
    again = client.post(f"/requests/{request.pk}/release/", follow=True).content.decode()
    assert "Nothing to release" in again


def test_an_outsider_is_told_no_on_the_request_page(client, granted):
    people, request = granted
    client.force_login(people.outsider)
    text = client.post(f"/requests/{request.pk}/release/", follow=True).content.decode()
    assert "Only members of team netlab can change this reservation." in text
    assert held(request) == 3
    assert client.post("/requests/999999/release/").status_code == 404


def test_the_team_page_lists_its_requests_with_what_they_hold(client, granted):
    people, request = granted
    client.force_login(people.owner)
    text = client.get("/team/").content.decode()
    assert 'data-testid="team-requests"' in text
    assert f'href="/requests/{request.pk}/"' in text
    assert f'data-testid="request-holding-{request.pk}">3 of 3<' in text
    first = Reservation.objects.filter(requests=request).order_by("pk").first()
    reservations.release(reservation_id=first.pk, user=people.owner)
    text = client.get("/team/").content.decode()
    assert f'data-testid="request-holding-{request.pk}">2 of 3<' in text
    client.force_login(people.outsider)  # another team's page does not list it
    assert f'href="/requests/{request.pk}/"' not in client.get("/team/").content.decode()
