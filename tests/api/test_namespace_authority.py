"""Namespace authority through the API: who may apply a NAD into which namespace, and who
manages a team's namespaces. The cast of tests/api/builders.py: `owner` and `mate` in team
netlab (namespaces `netlab` and `netlab-*`), `outsider` in team storage (none), `staff` in no
team, and anonymous. Applies go to a real kube-apiserver with the NAD CRD installed (the one
tests/integration/real_api_server.py starts), so an allowed apply really creates the NAD and a
refused one is checked to have created nothing there."""

from __future__ import annotations

import io
import uuid

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from inventory.models import NetworkAttachment, TeamNamespace
from tests.api.builders import make_free_interface, make_node, make_user
from tests.integration.real_api_server import nad_api, real_api_server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.django_db]

NETLAB_RULE = "team netlab may apply into: netlab, netlab-*."


@pytest.fixture
def world(people, nad_api, settings):  # noqa: F811 (the fixture imported above)
    settings.KUBECONFIG = str(nad_api.kubeconfig)
    for namespace in ("netlab", "netlab-train"):
        nad_api.ensure_namespace(namespace)
    TeamNamespace.objects.create(team=people.team, pattern="netlab")
    TeamNamespace.objects.create(team=people.team, pattern="netlab-*")
    node = make_node("node-a")
    return {"nic": make_free_interface(node, "ens1f0"), "api": nad_api}


def in_cluster(api, namespace: str, name: str) -> bool:
    return api.has_nad(namespace, name)


def apply(client, world, namespace: str, **fields):
    name = f"nad-{uuid.uuid4().hex[:8]}"
    body = {"namespace": namespace, "name": name, "interfaces": [world["nic"].pk], **fields}
    return name, client.post("/api/v1/nads/apply/", body, format="json")


@pytest.mark.slow  # a real kube-apiserver
@pytest.mark.parametrize(("who", "namespace"), [("owner", "netlab"), ("mate", "netlab-train")])
def test_team_members_apply_into_their_teams_namespaces(people, world, client_for, who, namespace):
    name, response = apply(client_for(getattr(people, who)), world, namespace)
    assert response.status_code == 201, response.content
    assert in_cluster(world["api"], namespace, name)
    row = NetworkAttachment.objects.get(namespace=namespace, name=name)
    assert row.team == people.team and row.applied_by == getattr(people, who)


@pytest.mark.slow  # a real kube-apiserver
@pytest.mark.parametrize("namespace", ["default", "kube-system", "netlabx", "xnetlab-a"])
def test_a_member_applying_elsewhere_is_403_naming_the_namespace_and_the_rule(
    people, world, client_for, namespace
):
    name, response = apply(client_for(people.mate), world, namespace)
    assert response.status_code == 403
    assert response.json() == {
        "detail": f"Team netlab may not apply a NAD into namespace {namespace}: {NETLAB_RULE}"
    }
    assert not in_cluster(world["api"], namespace, name)
    assert not NetworkAttachment.objects.exists()


@pytest.mark.slow  # a real kube-apiserver
def test_an_outsider_may_not_apply_into_another_teams_namespace(people, world, client_for):
    client = client_for(people.outsider)
    # Acting for its own team, which has no namespace: refused, told to download instead.
    name, response = apply(client, world, "netlab")
    assert response.status_code == 403
    detail = response.json()["detail"]
    assert detail.startswith("Team storage may not apply a NAD into namespace netlab:")
    assert "may apply into no namespace" in detail and "download the YAML" in detail
    assert not in_cluster(world["api"], "netlab", name)
    # Naming the team it is not in: refused by membership.
    name, response = apply(client, world, "netlab", team="netlab")
    assert response.status_code == 403
    assert response.json() == {"detail": "You are not a member of team netlab."}
    assert not NetworkAttachment.objects.exists()


@pytest.mark.slow  # a real kube-apiserver
def test_a_team_without_namespaces_still_renders_and_validates(people, world, client_for):
    client = client_for(people.outsider)
    body = {"namespace": "netlab", "name": "fast-net", "interfaces": [world["nic"].pk]}
    rendered = client.post("/api/v1/nads/render/", body, format="json")
    assert rendered.status_code == 200 and rendered.json()["ok"] is True
    assert "name: fast-net" in rendered.json()["nads"][0]["yaml"]
    validated = client.post("/api/v1/nads/validate/", body, format="json")
    assert validated.status_code == 200 and validated.json()["ok"] is True


@pytest.mark.slow  # a real kube-apiserver
def test_a_user_in_no_team_may_not_apply(world, client_for):
    loner = make_user("lone")
    name, response = apply(client_for(loner), world, "netlab")
    assert response.status_code == 403
    assert response.json()["detail"].startswith(
        "You may not apply a NAD into namespace netlab: you act for no team"
    )
    assert not in_cluster(world["api"], "netlab", name)


@pytest.mark.slow  # a real kube-apiserver
def test_anonymous_may_not_apply(world, client_for):
    name, response = apply(client_for(None), world, "netlab")
    assert response.status_code == 401
    assert not in_cluster(world["api"], "netlab", name)


@pytest.mark.slow  # a real kube-apiserver
@pytest.mark.parametrize("team", [None, "storage"])
def test_staff_apply_anywhere(people, world, client_for, team):
    fields = {"team": team} if team else {}
    name, response = apply(client_for(people.staff), world, "kube-system", **fields)
    assert response.status_code == 201, response.content
    assert in_cluster(world["api"], "kube-system", name)


@pytest.mark.slow  # a real kube-apiserver
def test_taking_a_namespace_away_takes_the_right_to_apply_there(people, world, client_for):
    row = TeamNamespace.objects.get(team=people.team, pattern="netlab-*")
    staff = client_for(people.staff)
    assert staff.delete(f"/api/v1/team-namespaces/{row.pk}/").status_code == 204
    name, response = apply(client_for(people.owner), world, "netlab-train")
    assert response.status_code == 403
    assert response.json()["detail"].endswith("team netlab may apply into: netlab.")


# --- managing the namespaces -------------------------------------------------------------------


@pytest.fixture
def namespaces(people):
    TeamNamespace.objects.create(team=people.team, pattern="netlab")
    TeamNamespace.objects.create(team=people.other_team, pattern="storage-*")


def listed(client, **params):
    response = client.get("/api/v1/team-namespaces/", params)
    assert response.status_code == 200, response.content
    return [(row["team"], row["pattern"]) for row in response.json()["results"]]


def test_members_read_their_teams_namespaces_and_staff_every_teams(people, namespaces, client_for):
    assert listed(client_for(people.owner)) == [("netlab", "netlab")]
    assert listed(client_for(people.mate)) == [("netlab", "netlab")]
    assert listed(client_for(people.outsider)) == [("storage", "storage-*")]
    assert listed(client_for(people.staff)) == [("netlab", "netlab"), ("storage", "storage-*")]
    assert listed(client_for(people.staff), team="storage") == [("storage", "storage-*")]
    assert client_for(None).get("/api/v1/team-namespaces/").status_code == 401
    other = TeamNamespace.objects.get(pattern="storage-*")
    assert client_for(people.owner).get(f"/api/v1/team-namespaces/{other.pk}/").status_code == 404


def test_staff_add_a_namespace_once(people, namespaces, client_for):
    staff = client_for(people.staff)
    body = {"team": "netlab", "pattern": "netlab-*"}
    created = staff.post("/api/v1/team-namespaces/", body, format="json")
    assert created.status_code == 201, created.content
    assert created.json() == {
        "id": TeamNamespace.objects.get(pattern="netlab-*").pk,
        "team": "netlab",
        "pattern": "netlab-*",
    }
    again = staff.post("/api/v1/team-namespaces/", body, format="json")
    assert again.status_code == 200 and again.json() == created.json()
    assert listed(client_for(people.mate)) == [("netlab", "netlab"), ("netlab", "netlab-*")]


@pytest.mark.parametrize("who", ["owner", "mate", "outsider"])
def test_only_staff_add_or_remove_namespaces(people, namespaces, client_for, who):
    client = client_for(getattr(people, who))
    response = client.post(
        "/api/v1/team-namespaces/", {"team": "netlab", "pattern": "kube-system"}, format="json"
    )
    assert response.status_code == 403
    assert "Only staff manage a team's namespaces" in response.json()["detail"]
    row = TeamNamespace.objects.get(pattern="netlab")
    deleted = client.delete(f"/api/v1/team-namespaces/{row.pk}/")
    # A member sees the row and is refused; an outsider does not see it at all.
    assert deleted.status_code == (404 if who == "outsider" else 403)
    assert sorted(TeamNamespace.objects.values_list("pattern", flat=True)) == [
        "netlab",
        "storage-*",
    ]
    anonymous = client_for(None).post(
        "/api/v1/team-namespaces/", {"team": "netlab", "pattern": "x"}, format="json"
    )
    assert anonymous.status_code == 401


@pytest.mark.parametrize(
    ("body", "field", "text"),
    [
        ({"team": "netlab", "pattern": "Kube_System"}, "pattern", "Not a namespace name or"),
        ({"team": "netlab", "pattern": "lab-[ab"}, "pattern", "unbalanced"),
        ({"team": "netlab", "pattern": ""}, "pattern", "Empty"),
        ({"team": "nobody", "pattern": "x"}, "team", "There is no team 'nobody'."),
        ({"team": "netlab", "pattern": "x", "namespace": "y"}, "namespace", "Unknown field"),
    ],
)
def test_a_bad_namespace_body_is_a_400_naming_the_field(
    people, namespaces, client_for, body, field, text
):
    response = client_for(people.staff).post("/api/v1/team-namespaces/", body, format="json")
    assert response.status_code == 400
    assert field in response.json() and text in response.json()[field][0], response.json()


# --- the management command ----------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("teamnamespaces", *args, stdout=out)
    return out.getvalue()


def test_the_command_lists_adds_and_removes_a_teams_namespaces(people, namespaces):
    assert run() == "team netlab: netlab\nteam storage: storage-*\n"
    assert run("netlab", "--add", "netlab-*", "--add", "lab-[ab]") == (
        "team netlab: lab-[ab], netlab, netlab-*\n"
    )
    assert run("netlab", "--remove", "netlab") == "team netlab: lab-[ab], netlab-*\n"
    assert run("storage", "--remove", "storage-*") == ("team storage: none (may not apply NADs)\n")
    with pytest.raises(CommandError, match="Team netlab has no namespace ghost"):
        run("netlab", "--remove", "ghost")
    with pytest.raises(CommandError, match="Not a namespace name or pattern: 'Bad/NS'"):
        run("netlab", "--add", "Bad/NS")
    with pytest.raises(CommandError, match="no such team: nobody"):
        run("nobody")
    assert run("netlab") == "team netlab: lab-[ab], netlab-*\n"


def team_history() -> list[tuple]:
    from inventory.choices import HistoryKind
    from inventory.models import HistoryEntry

    return list(
        HistoryEntry.objects.filter(kind=HistoryKind.TEAM)
        .order_by("id")
        .values_list("message", "actor__username", "team__name", "data")
    )


def test_every_change_of_a_teams_namespaces_is_in_its_history(people, namespaces, client_for):
    staff = client_for(people.staff)
    body = {"team": "netlab", "pattern": "netlab-*"}
    assert staff.post("/api/v1/team-namespaces/", body, format="json").status_code == 201
    assert staff.post("/api/v1/team-namespaces/", body, format="json").status_code == 200
    row = TeamNamespace.objects.get(pattern="netlab-*")
    assert staff.delete(f"/api/v1/team-namespaces/{row.pk}/").status_code == 204
    run("storage", "--add", "backup")
    refused = client_for(people.owner).post(
        "/api/v1/team-namespaces/", {"team": "netlab", "pattern": "x"}, format="json"
    )
    assert refused.status_code == 403
    name = people.staff.get_username()
    # Added once (the repeat changed nothing), removed, and the command's change; no row for
    # the refused attempt.
    assert team_history() == [
        (
            f"{name} gave team netlab namespace(s) netlab-*",
            name,
            "netlab",
            {"added": ["netlab-*"], "removed": []},
        ),
        (
            f"{name} took namespace(s) netlab-* from team netlab",
            name,
            "netlab",
            {"added": [], "removed": ["netlab-*"]},
        ),
        (
            "the system gave team storage namespace(s) backup",
            None,
            "storage",
            {"added": ["backup"], "removed": []},
        ),
    ]


def test_the_admin_records_the_namespaces_it_changes(people, namespaces, client):
    from django.contrib.auth.models import Group

    team = Group.objects.get(name="netlab")
    people.staff.is_superuser = True
    people.staff.save()
    client.force_login(people.staff)
    current = TeamNamespace.objects.get(team=team, pattern="netlab")
    form = {
        "name": "netlab",
        "namespaces-TOTAL_FORMS": "2",
        "namespaces-INITIAL_FORMS": "1",
        "namespaces-MIN_NUM_FORMS": "0",
        "namespaces-MAX_NUM_FORMS": "1000",
        "namespaces-0-id": str(current.pk),
        "namespaces-0-team": str(team.pk),
        "namespaces-0-pattern": "netlab",
        "namespaces-0-DELETE": "on",
        "namespaces-1-team": str(team.pk),
        "namespaces-1-pattern": "netlab-train",
    }
    response = client.post(f"/admin/auth/group/{team.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:2000]
    assert sorted(TeamNamespace.objects.filter(team=team).values_list("pattern", flat=True)) == [
        "netlab-train"
    ]
    name = people.staff.get_username()
    assert team_history()[-1] == (
        f"{name} gave team netlab namespace(s) netlab-train and took namespace(s) netlab from "
        "team netlab",
        name,
        "netlab",
        {"added": ["netlab-train"], "removed": ["netlab"]},
    )
