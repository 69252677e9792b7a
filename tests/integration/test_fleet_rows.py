"""The fleet page's rows, state badges, actions and per-node bars, which template tags build in
Python (templatetags/nicportal.py): every text from a node, an agent or a user comes out escaped
wherever it lands (element text, attributes, link addresses), and the markup is the one the
other pages use."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.urls import reverse

from inventory.choices import OwnershipState
from tests.factories import (
    make_cluster,
    make_interface,
    make_node,
    make_reservation,
    make_team,
    make_user,
)

pytestmark = pytest.mark.django_db

SCRIPT = "<script>alert(1)</script>"
# Text that would end an attribute and open a new one if quotes were not escaped.
ATTRIBUTE = "x\" onmouseover=\"alert(2)' onfocus='alert(3)"


@pytest.fixture
def logged_in(client):
    client.force_login(make_user("alice", teams=[make_team("platform")]))
    return client


def row_of(body: str, pk: int) -> str:
    found = re.search(rf'<tr id="interface-{pk}"[^>]*>.*?</tr>', body, re.S)
    assert found, f"no row for interface {pk}"
    return found.group(0)


@pytest.mark.parametrize("field", ["alias", "reason", "holder", "breach", "driver", "mac"])
@pytest.mark.parametrize("hostile", [SCRIPT, ATTRIBUTE])
def test_an_agents_text_in_a_fleet_row_comes_out_escaped(logged_in, field, hostile):
    interface = make_interface(make_node(name="worker-1"), **{field: hostile})
    body = logged_in.get("/").content.decode()
    row = row_of(body, interface.pk)
    assert hostile not in body
    escaped = hostile.replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.replace('"', "&quot;").replace("'", "&#x27;")
    assert escaped in row


def test_a_hostile_team_cluster_and_node_name_come_out_escaped(logged_in):
    # Two clusters: the cluster column and the bars' cluster prefix are shown.
    hostile_cluster = make_cluster(name=f"c{SCRIPT}")
    make_node(make_cluster(name="other"), name="worker-2")
    node = make_node(hostile_cluster, name=f"n{ATTRIBUTE}")
    interface = make_interface(node, state=OwnershipState.RESERVED)
    make_reservation(interface, make_team(f"t{SCRIPT}"))
    make_interface(make_node(make_cluster(name="third"), name="worker-3"))

    body = logged_in.get("/").content.decode()
    row = row_of(body, interface.pk)
    assert SCRIPT not in body
    assert ATTRIBUTE not in body
    assert '<td data-testid="cluster">c&lt;script&gt;alert(1)&lt;/script&gt;</td>' in row
    assert "<td>t&lt;script&gt;alert(1)&lt;/script&gt;</td>" in row
    assert ">nx&quot; onmouseover=&quot;alert(2)&#x27; onfocus=&#x27;alert(3)</a>" in row
    bars = body[body.index('data-testid="node-bars"') :]
    assert 'aria-label="nx&quot; onmouseover=&quot;alert(2)&#x27;' in bars
    assert '<span class="muted">c&lt;script&gt;alert(1)&lt;/script&gt;/</span>' in bars


def test_a_fleet_row_has_the_cells_and_links_of_the_table(logged_in):
    node = make_node(name="worker-1")
    free = make_interface(node, name="ens1f0", alias="uplink", speed_mbps=25000, pci_address="")
    gone = make_interface(node, name="ens2f0", state=OwnershipState.POD, present=False)

    body = logged_in.get("/").content.decode()
    row = row_of(body, free.pk)
    node_link = reverse("inventory:node", args=["worker-1"]) + f"?cluster={node.cluster.name}"
    assert row.startswith(f'<tr id="interface-{free.pk}">')
    assert f'<td><a href="{node_link}">worker-1</a></td>' in row
    assert (
        f'<td><a class="mono" href="{reverse("inventory:interface", args=[free.pk])}">ens1f0</a>'
        '<span class="alias">uplink</span></td>'
    ) in row
    assert f'<span class="badge s-free" title="{free.reason}">free</span>' in row
    assert '<td class="num">25 Gb/s</td><td>veth</td><td class="mono">–</td>' in row
    assert f'<td class="mono hide-narrow">{free.mac}</td>' in row
    reserve = reverse("inventory:interface-reserve", args=[free.pk])
    assert f'<a class="btn small" href="{reserve}">Reserve</a>' in row
    assert f'<a class="btn small" href="/nads/new/?interface={free.pk}">NAD</a>' in row

    absent = row_of(body, gone.pk)
    assert absent.startswith(f'<tr id="interface-{gone.pk}" class="absent">')
    assert "Reserve</a>" not in absent and "NAD</a>" not in absent


def test_a_breach_shows_its_badge_with_the_reason(logged_in):
    interface = make_interface(
        make_node(), state=OwnershipState.RESERVED, breach="held by a pod of team b"
    )
    row = row_of(logged_in.get("/").content.decode(), interface.pk)
    assert (
        f' <span class="badge breach" title="held by a pod of team b"'
        f' data-testid="breach-{interface.pk}">breach</span>'
    ) in row
    assert f'<a class="btn small" href="/nads/new/?interface={interface.pk}">NAD</a>' in row
    assert "Reserve</a>" not in row


def test_the_live_refresh_of_a_later_page_stays_on_that_page(logged_in):
    node = make_node(name="node-a")
    for index in range(30):
        make_interface(node, name=f"ens{index:02d}", state=OwnershipState.FREE)
    first = logged_in.get("/?per_page=25&state=free").content.decode()
    later = logged_in.get("/?per_page=25&state=free&page=2").content.decode()

    def refresh_url(body: str) -> str:
        found = re.search(r'<div hx-get="([^"]*)" hx-trigger="every ', body)
        assert found, "no live refresh on the page"
        return found.group(1).replace("&amp;", "&")

    def params(url: str) -> dict[str, list[str]]:
        return parse_qs(urlsplit(url).query)

    assert "page" not in params(refresh_url(first))
    refresh = refresh_url(later)
    assert {name: params(refresh)[name] for name in ("page", "per_page", "state")} == {
        "page": ["2"],
        "per_page": ["25"],
        "state": ["free"],
    }
    # What the refresh brings once the inventory changed (its `since` is older) is that page
    # again, not the first one.
    stale = re.sub(r"since=[^&]*", "since=older", refresh)
    again = logged_in.get(stale, HTTP_HX_REQUEST="true").content.decode()
    assert 'id="interface-' in again
    assert re.findall(r'id="interface-(\d+)"', again) == re.findall(r'id="interface-(\d+)"', later)
