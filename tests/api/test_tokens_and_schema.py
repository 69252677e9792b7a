"""API tokens (endpoint and `createtoken`), `createteam`, and the OpenAPI schema and docs."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.middleware.csrf import _get_new_csrf_string
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from inventory.models import TeamNamespace
from tests.api.builders import make_user

pytestmark = pytest.mark.django_db


def test_a_logged_in_user_creates_a_token_that_then_authenticates(people):
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(people.owner)
    # Session authentication enforces CSRF on POST, like the UI's form does.
    assert browser.post("/api/v1/tokens/").status_code == 403
    # The UI's pages set the CSRF cookie; here the test sets one and sends it back as a header.
    secret = _get_new_csrf_string()
    browser.cookies["csrftoken"] = secret
    response = browser.post("/api/v1/tokens/", HTTP_X_CSRFTOKEN=secret)
    assert response.status_code == 201, response.content
    token = response.json()["token"]
    assert response.json()["user"] == "olivia" and response.json()["expiry"] is not None

    # knox stores only a digest of it.
    assert not AuthToken.objects.filter(digest=token).exists()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/nodes/").status_code == 200


def test_anonymous_cannot_create_a_token():
    assert APIClient().post("/api/v1/tokens/").status_code == 401
    assert not AuthToken.objects.exists()


def test_a_wrong_token_is_401(people):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 64)
    assert client.get("/api/v1/nodes/").status_code == 401


def test_createtoken_prints_a_working_token_once(people):
    out = io.StringIO()
    call_command("createtoken", "mateo", stdout=out)
    token = out.getvalue().strip()
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert client.get("/api/v1/reservations/").status_code == 200
    # Every token expires; 30 days unless told otherwise.
    lifetime = AuthToken.objects.get(user=people.mate).expiry - timezone.now()
    assert timedelta(days=29, hours=23) < lifetime <= timedelta(days=30)


def test_createtoken_rejects_unknown_and_inactive_users(people):
    with pytest.raises(CommandError, match="no user"):
        call_command("createtoken", "nobody")
    people.outsider.is_active = False
    people.outsider.save()
    with pytest.raises(CommandError, match="inactive"):
        call_command("createtoken", "oscar")


def test_createtoken_can_set_an_expiry_and_a_note(people):
    call_command(
        "createtoken", "olivia", "--expires-in-days", "2", "--note", "ci", stdout=io.StringIO()
    )
    token = AuthToken.objects.get(user=people.owner)
    assert token.expiry - timezone.now() <= timedelta(days=2)
    assert token.note.text == "ci"


@pytest.mark.parametrize("days", ["0", "366", "-1"])
def test_createtoken_refuses_a_lifetime_out_of_range(people, days):
    with pytest.raises(CommandError, match="--expires-in-days: A whole number of days from 1"):
        call_command("createtoken", "olivia", "--expires-in-days", days)
    assert not AuthToken.objects.exists()


def test_createteam_creates_and_adds_members_idempotently():
    make_user("ana")
    make_user("bo")
    out = io.StringIO()
    call_command("createteam", "radio", "--member", "ana", stdout=out)
    call_command("createteam", "radio", "--member", "bo", stdout=out)
    team = Group.objects.get(name="radio")
    assert sorted(u.username for u in team.user_set.all()) == ["ana", "bo"]
    assert "team radio exists; members: ana, bo" in out.getvalue()
    with pytest.raises(CommandError, match="ghost"):
        call_command("createteam", "radio", "--member", "ghost")
    assert User.objects.count() == 2


def test_the_schema_validates_without_warnings(tmp_path):
    target = tmp_path / "schema.yml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(target))
    text = target.read_text()
    for path in (
        "/api/v1/interfaces/",
        "/api/v1/reservations/{id}/extend/",
        "/api/v1/nads/render/",
        "/api/v1/tokens/",
        "/api/v1/history/",
    ):
        assert f"  {path}:" in text, path


def test_schema_and_docs_are_served_without_a_cdn(client):
    assert client.get("/api/schema/").status_code == 200
    docs = client.get("/api/docs/")
    assert docs.status_code == 200
    html = docs.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower()


def test_createteam_gives_a_team_namespaces_and_refuses_what_is_no_namespace():
    out = io.StringIO()
    call_command("createteam", "ml", "--namespace", "ml", "--namespace", "ml-*", stdout=out)
    call_command("createteam", "ml", "--namespace", "ml", stdout=out)
    assert out.getvalue().splitlines()[-1] == "team ml exists; members: none; namespaces: ml, ml-*"
    assert TeamNamespace.objects.filter(team__name="ml").count() == 2
    with pytest.raises(CommandError, match="not a namespace name or pattern: ML_Team"):
        call_command("createteam", "ml", "--namespace", "ML_Team")
