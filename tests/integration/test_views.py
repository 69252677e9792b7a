"""The dashboard's views through Django's test client: full pages and htmx fragments, filters,
live polling answers, login, CSRF, escaping, reservation actions and the CSV export."""

from __future__ import annotations

import csv
import io
import re
from datetime import timedelta

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from inventory.choices import OwnershipState
from inventory.models import Reservation, TeamNamespace
from inventory.web.views import fleet as fleet_views
from tests.factories import (
    make_history,
    make_interface,
    make_node,
    make_pod_attachment,
    make_reservation,
    make_team,
    make_user,
    move_into_pod,
)

pytestmark = pytest.mark.django_db

HTMX = {"HX-Request": "true"}
HOSTILE = "<script>alert(1)</script>"


@pytest.fixture
def team():
    return make_team("platform")


@pytest.fixture
def user(team):
    return make_user("alice", teams=[team])


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def node():
    return make_node(name="worker-1")


def page_urls(interface, reservation) -> list[str]:
    return [
        reverse("inventory:fleet"),
        reverse("inventory:fleet-export"),
        reverse("inventory:node", args=[interface.node.name]),
        reverse("inventory:interface", args=[interface.pk]),
        reverse("inventory:team"),
        reverse("inventory:interface-reserve", args=[interface.pk]),
        reverse("inventory:reservation-extend", args=[reservation.pk]),
    ]


def test_it_requires_login_on_every_page(client, node, team):
    interface = make_interface(node)
    reservation = make_reservation(make_interface(node), team)
    for url in page_urls(interface, reservation):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response["Location"].startswith(reverse("login")), url
    for url in (
        reverse("inventory:team-switch"),
        reverse("inventory:reservation-release", args=[reservation.pk]),
    ):
        assert client.post(url).status_code == 302, url
    assert Reservation.objects.get(pk=reservation.pk).active


def test_it_sends_an_expired_htmx_poll_to_the_login_page_instead_of_swapping_it_in(client):
    response = client.get("/?since=1", headers=HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"].startswith(reverse("login"))
    assert b"<form" not in response.content


def test_it_renders_every_page_for_a_logged_in_user(logged_in, node, team):
    interface = make_interface(node)
    reservation = make_reservation(make_interface(node), team)
    for url in page_urls(interface, reservation):
        assert logged_in.get(url).status_code == 200, url


def test_it_answers_htmx_with_the_fragment_only(logged_in, node):
    interface = make_interface(node, name="ens1f0")
    pages = {
        reverse("inventory:fleet"): 'id="results"',
        reverse("inventory:node", args=[node.name]): 'id="live"',
        reverse("inventory:interface", args=[interface.pk]): 'id="live"',
        reverse("inventory:team"): 'id="live"',
    }
    for url, marker in pages.items():
        full = logged_in.get(url).content.decode()
        fragment = logged_in.get(url, headers=HTMX).content.decode()
        assert "<html" in full and marker in full, url
        assert "<html" not in fragment and "topbar" not in fragment, url
        assert fragment.lstrip().startswith(f"<section {marker}"), url


def test_a_boosted_navigation_gets_the_whole_page(logged_in, node):
    response = logged_in.get(
        reverse("inventory:node", args=[node.name]), headers={**HTMX, "HX-Boosted": "true"}
    )
    assert b"<html" in response.content


def test_it_filters_the_fleet_to_free_nics(logged_in, node):
    free = make_interface(node, name="ens1f0")
    make_interface(node, name="eth0", state=OwnershipState.SYSTEM)
    response = logged_in.get("/?state=free")
    assert list(response.context["interfaces"]) == [free]
    assert response.context["total"] == 1
    chips = {chip["value"]: chip["count"] for chip in response.context["state_chips"]}
    assert chips["free"] == 1 and chips["system"] == 1


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("q=uplink", {"eth0"}),
        ("q=0000:3b", {"ens1f0", "ens1f1"}),
        ("pci=0000:3b:00.1", {"ens1f1"}),
        ("driver=ice", {"ens1f0", "ens1f1"}),
        ("speed_min=50000", {"ens2f0"}),
        ("team=platform", {"ens2f0"}),
        ("node=worker-2", {"ens2f0"}),
        ("state=free&state=system", {"ens1f0", "ens1f1", "eth0"}),
        ("q=db-0", {"net1"}),
    ],
)
def test_it_filters_and_searches_server_side(logged_in, node, team, query, expected):
    make_interface(node, name="eth0", alias="uplink", state=OwnershipState.SYSTEM)
    make_interface(node, name="ens1f0", pci_address="0000:3b:00.0", driver="ice")
    make_interface(node, name="ens1f1", pci_address="0000:3b:00.1", driver="ice")
    make_interface(node, name="net1", state=OwnershipState.POD, holder="default/db-0")
    reserved = make_interface(
        make_node(cluster=node.cluster, name="worker-2"),
        name="ens2f0",
        speed_mbps=100000,
        state=OwnershipState.RESERVED,
    )
    make_reservation(reserved, team)
    response = logged_in.get(f"/?{query}")
    assert {i.name for i in response.context["interfaces"]} == expected
    assert response.context["total"] == len(expected)


def test_it_sorts_and_paginates(logged_in, node):
    for speed in (1000, 100000, 10000):
        make_interface(node, speed_mbps=speed)
    response = logged_in.get("/?sort=-speed&per_page=25")
    assert [i.speed_mbps for i in response.context["interfaces"]] == [100000, 10000, 1000]
    for _ in range(30):
        make_interface(node)
    second = logged_in.get("/?per_page=25&page=2")
    assert len(second.context["interfaces"]) == 8
    assert second.context["total"] == 33
    # A page past the end shows the last page instead of failing.
    assert logged_in.get("/?per_page=25&page=99").context["page_obj"].number == 2


def test_next_and_prev_links_walk_the_fleet_by_cursor(logged_in, node):
    for speed in [1000, None, 25000, 10000] * 14:
        make_interface(node, speed_mbps=speed)
    by_number = []
    for number in (1, 2, 3):
        response = logged_in.get(f"/?sort=-speed&per_page=25&page={number}")
        by_number += [i.pk for i in response.context["interfaces"]]
    by_cursor, pages_seen, url = [], [], "/?sort=-speed&per_page=25"
    while url:
        response = logged_in.get(url)
        by_cursor += [i.pk for i in response.context["interfaces"]]
        pages_seen.append(response.context["page_obj"].number)
        cursor = response.context["next_cursor"]
        following = pages_seen[-1] + 1
        url = f"/?sort=-speed&per_page=25&page={following}&cursor={cursor}" if cursor else ""
        if cursor:
            assert f"cursor={cursor}" in response.content.decode()  # the Next link carries it
    assert by_cursor == by_number and len(set(by_cursor)) == 56
    assert pages_seen == [1, 2, 3]
    back = logged_in.get(
        f"/?sort=-speed&per_page=25&page=2&cursor={response.context['previous_cursor']}"
    )
    assert [i.pk for i in back.context["interfaces"]] == by_number[25:50]
    # A cursor that does not fit this sort is ignored: the page number decides.
    other = logged_in.get(f"/?sort=name&per_page=25&page=2&cursor={back.context['next_cursor']}")
    assert other.status_code == 200 and other.context["page_obj"].number == 2


def test_the_node_filter_suggests_names_only_for_a_fleet_of_reasonable_size(
    logged_in, node, monkeypatch
):
    make_node(node.cluster, name="node-zz")
    page = logged_in.get("/")
    assert list(page.context["node_names"]) == sorted([node.name, "node-zz"])
    assert '<option value="node-zz">' in page.content.decode()
    monkeypatch.setattr(fleet_views, "NODE_SUGGESTIONS", 1)
    assert logged_in.get("/").context["node_names"] == []


def test_an_unknown_sort_falls_back_to_node_order(logged_in, node):
    assert logged_in.get("/?sort=password").context["sort"] == "node"


def fleet_queries(client, team, count: int) -> int:
    node = make_node()
    owner = make_user(teams=[team])
    for index in range(count):
        interface = make_interface(node)
        if index % 3 == 0:
            make_reservation(interface, team, owner)
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/?per_page=200")
    assert response.status_code == 200
    return len(queries)


def test_the_fleet_view_has_no_n_plus_one(logged_in, team, django_assert_max_num_queries):
    small = fleet_queries(logged_in, team, 20)
    large = fleet_queries(logged_in, team, 200)
    assert small == large
    # The page's ids from the sort's index, then its rows: one query more than a slice of
    # joined rows, and a deep page costs what the first costs (read/pages.py). One query for
    # the cluster names (the cluster filter and column).
    with django_assert_max_num_queries(14):
        logged_in.get("/?per_page=200")
    with django_assert_max_num_queries(14):
        logged_in.get("/?per_page=200", headers=HTMX)


def test_a_poll_with_nothing_new_answers_204(logged_in, node):
    interface = make_interface(node)
    make_history(interface)
    for url in (
        "/",
        reverse("inventory:node", args=[node.name]),
        reverse("inventory:interface", args=[interface.pk]),
        reverse("inventory:team"),
    ):
        version = logged_in.get(url, headers=HTMX).context["version"]
        response = logged_in.get(url, {"since": version}, headers=HTMX)
        assert response.status_code == 204, url


def test_a_poll_after_a_nic_moved_into_a_pod_returns_the_new_fragment(logged_in, node):
    interface = make_interface(node)
    version = logged_in.get("/", headers=HTMX).context["version"]
    move_into_pod(interface, pod="default/web-0")
    response = logged_in.get("/", {"since": version}, headers=HTMX)
    assert response.status_code == 200
    assert 'class="badge s-pod"' in response.content.decode()
    assert response.context["version"] != version


def test_a_poll_for_a_deleted_interface_stops_with_286(logged_in, node):
    interface = make_interface(node)
    url = reverse("inventory:interface", args=[interface.pk])
    interface.delete()
    assert logged_in.get(url, {"since": "1"}, headers=HTMX).status_code == 286


@pytest.mark.parametrize("field", ["alias", "name", "reason", "holder"])
def test_node_text_is_escaped_everywhere(logged_in, node, field):
    interface = make_interface(node, **{field: HOSTILE})
    make_history(interface, message=HOSTILE)
    make_pod_attachment(interface, pod_name="x", error=HOSTILE)
    for url in (
        "/",
        reverse("inventory:node", args=[node.name]),
        reverse("inventory:interface", args=[interface.pk]),
    ):
        body = logged_in.get(url).content.decode()
        assert HOSTILE not in body, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body, url


def test_the_node_page_groups_nics_by_owner_and_shows_the_cni(logged_in):
    node = make_node(
        stale=True,
        cni={
            "bin_dirs": ["/opt/cni/bin"],
            "host_device": {"path": "/opt/cni/bin/host-device", "version": "1.1.1"},
        },
    )
    make_interface(node, name="bond0", state=OwnershipState.VIRTUAL, kind="bond")
    make_interface(node, name="ens1", state=OwnershipState.ENSLAVED, master="bond0")
    make_interface(node, name="ens2", state=OwnershipState.ENSLAVED, master="bond0")
    make_interface(node, name="ens3")
    response = logged_in.get(reverse("inventory:node", args=[node.name]))
    groups = {group.key: group for group in response.context["groups"]}
    assert [i.name for i in groups["enslaved"].masters["bond0"]] == ["ens1", "ens2"]
    assert [i.name for i in groups["free"].interfaces] == ["ens3"]
    body = response.content.decode()
    assert "stale" in body and "1.1.1" in body


def test_a_node_name_in_two_clusters_is_chosen_with_the_cluster_parameter(logged_in):
    first = make_node(name="worker-1")
    second = make_node(name="worker-1")
    url = reverse("inventory:node", args=["worker-1"])
    assert logged_in.get(url, {"cluster": second.cluster.name}).context["node"] == second
    ambiguous = logged_in.get(url)
    assert set(ambiguous.context["clusters"]) == {first.cluster.name, second.cluster.name}
    assert logged_in.get(url, {"cluster": "nope"}).status_code == 404


def test_the_csv_export_streams_every_matching_row(logged_in, node, team):
    for _ in range(60):
        make_interface(node)
    make_interface(node, state=OwnershipState.SYSTEM)
    make_interface(node, alias="=HYPERLINK(1)")
    response = logged_in.get(reverse("inventory:fleet-export"), {"state": "free"})
    assert response.streaming and response["Content-Type"] == "text/csv"
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 61
    assert {row["state"] for row in rows} == {"free"}
    # Node data never becomes a spreadsheet formula.
    assert "'=HYPERLINK(1)" in {row["alias"] for row in rows}


def test_the_team_page_lists_the_active_teams_reservations(logged_in, node, team, user):
    mine = make_interface(node, name="ens1", state=OwnershipState.RESERVED)
    theirs = make_interface(node, name="ens2", state=OwnershipState.RESERVED)
    make_reservation(mine, team, user)
    make_reservation(theirs, make_team("other"))
    response = logged_in.get(reverse("inventory:team"))
    assert list(response.context["interfaces"]) == [mine]


def test_the_team_page_says_where_the_team_may_apply_nads(logged_in, team):
    page = logged_in.get(reverse("inventory:team")).content.decode()
    assert "has no namespace: it may build and download NADs but not apply them" in page
    TeamNamespace.objects.create(team=team, pattern="ml-*")
    TeamNamespace.objects.create(team=team, pattern="ml")
    page = logged_in.get(reverse("inventory:team")).content.decode()
    assert f'{team.name} may apply NADs into: <span class="mono">ml, ml-*</span>' in page


def test_the_team_switcher_sets_the_session_team(logged_in, user):
    second = make_team("storage")
    user.groups.add(second)
    response = logged_in.post(reverse("inventory:team-switch"), {"team": second.pk, "next": "/"})
    assert response.status_code == 302
    assert logged_in.get(reverse("inventory:team")).context["team"] == second
    outsider = make_team("secret")
    logged_in.post(reverse("inventory:team-switch"), {"team": outsider.pk})
    assert logged_in.get(reverse("inventory:team")).context["team"] == second


@pytest.mark.parametrize(
    "offsite",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "https:evil.example",
        "http://testserver@evil.example/",
        "javascript:alert(1)",
        " //evil.example/",
    ],
)
@pytest.mark.parametrize("htmx", [False, True])
def test_the_team_switcher_refuses_an_offsite_next(logged_in, team, offsite, htmx):
    headers = {"HTTP_HX_REQUEST": "true"} if htmx else {}
    response = logged_in.post(
        reverse("inventory:team-switch"), {"team": team.pk, "next": offsite}, **headers
    )
    where = response["HX-Redirect"] if htmx else response["Location"]
    assert where == "/"


def test_the_team_switcher_goes_back_to_a_page_of_the_portal(logged_in, team):
    back = reverse("inventory:team")
    response = logged_in.post(reverse("inventory:team-switch"), {"team": team.pk, "next": back})
    assert response.status_code == 302
    assert response["Location"] == back


def test_forms_enforce_csrf(user, node, team):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    interface = make_interface(node)
    reservation = make_reservation(make_interface(node), team, user)
    for url, data in (
        (reverse("inventory:team-switch"), {"team": team.pk}),
        (reverse("inventory:interface-reserve", args=[interface.pk]), {"purpose": "x"}),
        (reverse("inventory:reservation-release", args=[reservation.pk]), {}),
        (reverse("logout"), {}),
    ):
        assert client.post(url, data).status_code == 403, url
    # With the token from the page, the same POST goes through.
    page = client.get(reverse("inventory:interface-reserve", args=[interface.pk]))
    token = page.context["csrf_token"]
    response = client.post(
        reverse("inventory:reservation-release", args=[reservation.pk]),
        {"csrfmiddlewaretoken": str(token)},
    )
    assert response.status_code == 302
    assert not Reservation.objects.get(pk=reservation.pk).active


def future(days: int = 3) -> str:
    return (timezone.localtime() + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M")


def test_reserving_from_the_dashboard_creates_a_reservation(logged_in, node, team):
    interface = make_interface(node)
    url = reverse("inventory:interface-reserve", args=[interface.pk])
    response = logged_in.post(url, {"purpose": "SR-IOV test", "expires_at": future()})
    assert response.status_code == 302
    assert response["Location"] == reverse("inventory:interface", args=[interface.pk])
    reservation = Reservation.objects.get(interface=interface, released_at__isnull=True)
    assert reservation.team == team and reservation.purpose == "SR-IOV test"


def test_an_htmx_reserve_answers_with_a_client_redirect(logged_in, node):
    interface = make_interface(node)
    url = reverse("inventory:interface-reserve", args=[interface.pk])
    response = logged_in.post(url, {"purpose": "x", "expires_at": future()}, headers=HTMX)
    assert response.status_code == 200
    assert response["HX-Redirect"] == reverse("inventory:interface", args=[interface.pk])


def test_reserving_a_held_nic_names_the_holder(logged_in, node):
    interface = make_interface(node, state=OwnershipState.RESERVED)
    make_reservation(interface, make_team("storage"))
    url = reverse("inventory:interface-reserve", args=[interface.pk])
    response = logged_in.post(url, {"purpose": "x", "expires_at": future()}, headers=HTMX)
    assert response.status_code == 200
    body = response.content.decode()
    assert "storage" in body and "<html" not in body
    assert Reservation.objects.filter(interface=interface).count() == 1


def test_reserving_into_the_past_is_refused_on_the_field(logged_in, node):
    interface = make_interface(node)
    url = reverse("inventory:interface-reserve", args=[interface.pk])
    response = logged_in.post(url, {"purpose": "x", "expires_at": future(-1)})
    assert response.status_code == 200
    assert response.context["form"].errors["expires_at"]
    assert not Reservation.objects.exists()


def test_extending_and_releasing_from_the_dashboard(logged_in, node, team, user):
    reservation = make_reservation(make_interface(node), team, user)
    url = reverse("inventory:reservation-extend", args=[reservation.pk])
    assert logged_in.post(url, {"expires_at": future(20)}).status_code == 302
    reservation.refresh_from_db()
    assert reservation.expires_at > timezone.now() + timedelta(days=19)
    logged_in.post(reverse("inventory:reservation-release", args=[reservation.pk]))
    reservation.refresh_from_db()
    assert not reservation.active


def test_the_extend_forms_default_extends_when_submitted_unchanged(logged_in, node, team, user):
    reservation = make_reservation(make_interface(node), team, user)
    before = reservation.expires_at
    url = reverse("inventory:reservation-extend", args=[reservation.pk])
    page = logged_in.get(url).content.decode()
    offered = re.search(r'name="expires_at" value="([^"]+)"', page).group(1)
    assert logged_in.post(url, {"expires_at": offered}).status_code == 302
    reservation.refresh_from_db()
    assert reservation.expires_at >= before + timedelta(days=7)


def test_an_outsider_cannot_release_another_teams_reservation(client, node, team):
    reservation = make_reservation(make_interface(node), team)
    client.force_login(make_user("mallory", teams=[make_team("other")]))
    client.post(reverse("inventory:reservation-release", args=[reservation.pk]))
    assert Reservation.objects.get(pk=reservation.pk).active


def test_logout_is_a_post(logged_in):
    assert logged_in.post(reverse("logout")).status_code == 302
    assert logged_in.get("/").status_code == 302


def test_speeds_are_shown_with_units_on_every_page(logged_in, node):
    nic = make_interface(node, name="ens1f0", speed_mbps=25000)
    make_interface(node, name="eth9", speed_mbps=100)
    for url in ("/", reverse("inventory:node", args=[node.name])):
        page = logged_in.get(url).content.decode()
        assert "25 Gb/s" in page and "100 Mb/s" in page
        assert ">25000<" not in page
    assert (
        "25 Gb/s" in logged_in.get(reverse("inventory:interface", args=[nic.pk])).content.decode()
    )
