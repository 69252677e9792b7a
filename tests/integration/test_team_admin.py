"""The admin's team page: staff give a team its namespaces inline (where it may apply NADs); a
pattern that is no namespace name or pattern is refused on the form and saves nothing."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission

from inventory.models import TeamNamespace
from inventory.services import teams
from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db

PREFIX = "namespaces"  # the inline's formset prefix (the related name)


def form(team, *patterns: str) -> dict:
    data = {
        "name": team.name,
        f"{PREFIX}-TOTAL_FORMS": str(len(patterns)),
        f"{PREFIX}-INITIAL_FORMS": "0",
        f"{PREFIX}-MIN_NUM_FORMS": "0",
        f"{PREFIX}-MAX_NUM_FORMS": "1000",
    }
    for index, pattern in enumerate(patterns):
        data[f"{PREFIX}-{index}-pattern"] = pattern
        data[f"{PREFIX}-{index}-team"] = str(team.pk)
    return data


@pytest.fixture
def staff_client(client):
    staff = make_user("sam", staff=True)
    for codename in ("view_group", "change_group", "add_teamnamespace", "view_teamnamespace"):
        staff.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(staff)
    return client


def test_staff_give_a_team_namespaces_on_its_admin_page(staff_client):
    team = make_team("ml")
    page = staff_client.get(f"/admin/auth/group/{team.pk}/change/")
    assert page.status_code == 200 and "where the team may apply NADs" in page.content.decode()
    response = staff_client.post(f"/admin/auth/group/{team.pk}/change/", form(team, "ml", "ml-*"))
    assert response.status_code == 302, response.content.decode()[:2000]
    assert teams.namespaces_of(team) == ["ml", "ml-*"]
    # The same rows the apply rule reads: a member may now apply into ml-train.
    member = make_user("mia", teams=[team])
    assert teams.apply_refusal(member, team, "ml-train") == ""


@pytest.mark.parametrize("bad", ["ML_Team", "ml/x", "lab-[ab"])
def test_a_bad_pattern_is_refused_on_the_form(staff_client, bad):
    team = make_team("ml")
    response = staff_client.post(f"/admin/auth/group/{team.pk}/change/", form(team, bad))
    assert response.status_code == 200
    assert "Not a namespace name or pattern" in response.content.decode()
    assert not TeamNamespace.objects.exists()


def test_a_member_without_admin_rights_cannot_open_the_team_page(client):
    team = make_team("ml")
    client.force_login(make_user("mia", teams=[team]))
    response = client.get(f"/admin/auth/group/{team.pk}/change/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
