"""The one acting-team rule (services.teams), as the NAD API, the reservation API and the
workflows apply it: a named team is the team (a name that is no team is refused like a team one
is not in); no name is the user's only team; several teams must name one; no team acts for none
(a NAD without reserved NICs) and cannot reserve."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone
from rest_framework.test import APIClient

from inventory.choices import OwnershipState
from inventory.services import teams
from tests.factories import (
    make_cluster,
    make_interface,
    make_node,
    make_reservation,
    make_team,
    make_user,
)

CNI = {"host_device": {"version": "1.6.2", "supported_versions": ["0.3.1", "0.4.0", "1.0.0"]}}


@pytest.fixture
def fleet(db, settings):
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = ""
    node = make_node(make_cluster(name="prod"), name="worker-1", cni=CNI)
    blue, red = make_team("blue"), make_team("red")
    return {
        "blue": blue,
        "red": red,
        "solo": make_user("solo", teams=[blue]),
        "both": make_user("both", teams=[blue, red]),
        "none": make_user("none"),
        "staff": make_user("staff", staff=True),
        "free": make_interface(node, name="ens1f0", pci_address="0000:3b:00.0"),
        "blue_nic": make_reservation(
            make_interface(
                node,
                name="ens2f0",
                pci_address="0000:3b:00.1",
                state=OwnershipState.RESERVED,
                holder="blue",
            ),
            blue,
        ).interface,
    }


def test_a_named_team_is_the_team_and_an_unknown_name_is_refused_like_no_membership(fleet):
    assert teams.acting_team(fleet["both"], "red", required=True) == fleet["red"]
    with pytest.raises(PermissionDenied, match="'nope'"):
        teams.acting_team(fleet["both"], "nope", required=False)
    named = teams.acting_team(fleet["solo"], "red", required=True)
    with pytest.raises(PermissionDenied, match="not a member of team red"):
        teams.check_acting(fleet["solo"], named)
    teams.check_acting(fleet["staff"], named)  # staff act for any team


def test_no_name_is_the_only_team_several_must_name_one_none_acts_for_none(fleet):
    assert teams.acting_team(fleet["solo"], None, required=True) == fleet["blue"]
    assert teams.acting_team(fleet["solo"], "", required=True) == fleet["blue"]
    with pytest.raises(ValidationError) as several:
        teams.acting_team(fleet["both"], None, required=False)
    assert "several teams" in several.value.message_dict["team"][0]
    assert teams.acting_team(fleet["none"], None, required=False) is None
    with pytest.raises(ValidationError) as none:
        teams.acting_team(fleet["none"], None, required=True)
    assert "no team" in none.value.message_dict["team"][0]


def _post(user, url, body):
    client = APIClient()
    client.force_authenticate(user)
    return client.post(url, body, format="json")


def _nad(nic, **fields):
    return {"namespace": "default", "name": "fast", "interfaces": [nic.pk], **fields}


def test_the_nad_api_uses_the_only_team_and_asks_a_user_in_several_to_name_one(fleet):
    # The reserved NIC is blue's: usable by the one-team member without naming blue.
    solo = _post(fleet["solo"], "/api/v1/nads/render/", _nad(fleet["blue_nic"]))
    assert solo.status_code == 200 and solo.json()["ok"], solo.content
    several = _post(fleet["both"], "/api/v1/nads/render/", _nad(fleet["blue_nic"]))
    assert several.status_code == 400 and "team" in several.json(), several.content
    named = _post(fleet["both"], "/api/v1/nads/render/", _nad(fleet["blue_nic"], team="blue"))
    assert named.status_code == 200 and named.json()["ok"], named.content
    # No team: a NAD is still built, without reserved NICs.
    nobody = _post(fleet["none"], "/api/v1/nads/render/", _nad(fleet["free"]))
    assert nobody.status_code == 200 and nobody.json()["ok"], nobody.content
    refused = _post(fleet["none"], "/api/v1/nads/render/", _nad(fleet["blue_nic"]))
    assert refused.status_code == 200 and not refused.json()["ok"]
    outsider = _post(fleet["solo"], "/api/v1/nads/render/", _nad(fleet["free"], team="red"))
    assert outsider.status_code == 403


def test_the_reservation_api_applies_the_same_rule_and_needs_a_team(fleet):
    body = {
        "interface": fleet["free"].pk,
        "purpose": "bench",
        "expires_at": (timezone.now() + timedelta(days=1)).isoformat(),
    }
    several = _post(fleet["both"], "/api/v1/reservations/", body)
    assert several.status_code == 400 and "team" in several.json(), several.content
    nobody = _post(fleet["none"], "/api/v1/reservations/", body)
    assert nobody.status_code == 400 and "team" in nobody.json(), nobody.content
    unknown = _post(fleet["solo"], "/api/v1/reservations/", {**body, "team": "nope"})
    assert unknown.status_code == 403
    solo = _post(fleet["solo"], "/api/v1/reservations/", body)
    assert solo.status_code == 201 and solo.json()["team"] == "blue", solo.content
