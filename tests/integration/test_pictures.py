"""The pictures on the pages: bars per node on the fleet page, an interface's timeline."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from inventory.choices import OwnershipState
from inventory.web.views.fleet import BAR_NODES
from tests.factories import (
    make_cluster,
    make_history,
    make_interface,
    make_node,
    make_team,
    make_user,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def logged_in(client):
    client.force_login(make_user("alice", teams=[make_team("platform")]))
    return client


def test_the_fleet_draws_free_reserved_and_in_pod_counts_per_node(logged_in):
    cluster = make_cluster()
    a, b = make_node(cluster, name="node-a"), make_node(cluster, name="node-b")
    for state in ("free", "free", "reserved", "pod", "system"):
        make_interface(a, state=state)
    make_interface(b, state="free")
    response = logged_in.get("/")
    bars = {bar.node: bar for bar in response.context["node_bars"]}
    assert bars["node-a"].counts == {"free": 2, "reserved": 1, "pod": 1}
    assert bars["node-b"].counts == {"free": 1, "reserved": 0, "pod": 0}
    page = response.content.decode()
    assert 'data-testid="bar-node-a"' in page and "2 free · 1 reserved · 1 in pods" in page
    assert 'style="width:50.0%"' in page  # node-a's 2 free of its 4 (the widest bar)
    # The bars follow the filters (all but state) and live updates.
    only_b = logged_in.get("/?node=node-b&state=system")
    assert [bar.node for bar in only_b.context["node_bars"]] == ["node-b"]


def test_a_large_fleet_shows_the_first_nodes_and_says_so(logged_in):
    cluster = make_cluster()
    for n in range(BAR_NODES + 3):
        make_interface(make_node(cluster, name=f"n{n:03d}"))
    page = logged_in.get("/").content.decode()
    assert f"the first {BAR_NODES} of {BAR_NODES + 3} nodes" in page


def test_the_interface_page_draws_its_states_over_time(logged_in):
    nic = make_interface(
        make_node(),
        state=OwnershipState.FREE,
        first_seen_at=timezone.now() - timedelta(hours=10),
    )
    make_history(nic, at=timezone.now() - timedelta(hours=6), old_state="free", new_state="pod")
    make_history(nic, at=timezone.now() - timedelta(hours=2), old_state="pod", new_state="free")
    response = logged_in.get(reverse("inventory:interface", args=[nic.pk]))
    states = [(s.state, round(s.percent)) for s in response.context["timeline"]]
    assert states == [("free", 40), ("pod", 40), ("free", 20)]
    assert 'data-state="pod"' in response.content.decode()
