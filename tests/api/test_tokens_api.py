"""`/api/v1/tokens/`: create with a password (no shell on the server needed), list, revoke;
every token expires; wrong passwords are throttled per address."""

from __future__ import annotations

import base64
from datetime import timedelta

import pytest
from django.utils import timezone
from knox.models import AuthToken
from rest_framework.test import APIClient

from inventory.api.auth import FAILURE_LIMIT
from inventory.services import tokens
from tests.api.builders import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    # The hasher is not under test; PBKDF2 would cost ~0.3 s per login attempt.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def alice(db):
    user = make_user("alice")
    user.set_password("wonderland")
    user.save()
    return user


def basic(username: str, password: str) -> APIClient:
    client = APIClient()
    raw = base64.b64encode(f"{username}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION=f"Basic {raw}")
    return client


def with_token(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def test_a_password_gets_a_token_that_then_authenticates(alice):
    response = basic("alice", "wonderland").post(
        "/api/v1/tokens/", {"note": "ci", "expires_in_days": 7}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["user"] == "alice" and body["note"] == "ci"
    assert body["token"].startswith(body["token_key"]) and len(body["token"]) == 64
    lifetime = AuthToken.objects.get(user=alice).expiry - timezone.now()
    assert timedelta(days=6, hours=23) < lifetime <= timedelta(days=7)
    assert with_token(body["token"]).get("/api/v1/nodes/").status_code == 200


def test_without_a_body_the_token_lasts_the_default(alice):
    response = basic("alice", "wonderland").post("/api/v1/tokens/")
    assert response.status_code == 201, response.content
    lifetime = AuthToken.objects.get(user=alice).expiry - timezone.now()
    assert lifetime > timedelta(days=tokens.DEFAULT_DAYS) - timedelta(minutes=5)


def test_a_wrong_password_is_401_and_creates_nothing(alice):
    response = basic("alice", "looking-glass").post("/api/v1/tokens/")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic")
    assert not AuthToken.objects.exists()


def test_passwords_open_only_the_token_endpoint(alice):
    assert basic("alice", "wonderland").get("/api/v1/nodes/").status_code == 401


def test_wrong_passwords_are_throttled_per_address_even_before_the_right_one(alice):
    for _ in range(FAILURE_LIMIT):
        assert basic("alice", "guess").post("/api/v1/tokens/").status_code == 401
    response = basic("alice", "wonderland").post("/api/v1/tokens/")
    assert response.status_code == 429
    assert "Too many wrong passwords" in response.json()["detail"]
    assert not AuthToken.objects.exists()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"expires_in_days": 366}, "expires_in_days"),
        ({"expires_in_days": "30"}, "expires_in_days"),
        ({"expires_in_days": True}, "expires_in_days"),
        ({"note": "x" * 101}, "note"),
        ({"note": 5}, "note"),
    ],
)
def test_bad_input_is_400_naming_the_field(alice, body, field):
    response = basic("alice", "wonderland").post("/api/v1/tokens/", body, format="json")
    assert response.status_code == 400
    assert list(response.json()) == [field]
    assert not AuthToken.objects.exists()


def test_the_list_shows_ones_own_valid_tokens_never_the_secret(alice):
    bob = make_user("bob")
    mine = tokens.create(user=alice, note="laptop", expires_in_days=1)
    used = tokens.create(user=alice, note="ci")
    tokens.create(user=bob, note="bob's")
    expired, _ = AuthToken.objects.create(user=alice, expiry=timedelta(seconds=-1))

    response = with_token(used.token).get("/api/v1/tokens/")
    assert response.status_code == 200
    rows = response.json()["results"]
    assert [(r["token_key"], r["note"], r["current"]) for r in rows] == [
        (used.token_key, "ci", True),
        (mine.token_key, "laptop", False),
    ]
    assert used.token not in response.content.decode()
    assert expired.token_key not in response.content.decode()


def test_revoking_a_token_stops_it_at_once(alice):
    doomed = tokens.create(user=alice, note="old")
    keeper = tokens.create(user=alice, note="new")
    response = with_token(keeper.token).delete(f"/api/v1/tokens/{doomed.token_key}/")
    assert response.status_code == 204
    assert with_token(doomed.token).get("/api/v1/nodes/").status_code == 401
    assert with_token(keeper.token).get("/api/v1/nodes/").status_code == 200


def test_nobody_revokes_someone_elses_token(alice):
    bob = make_user("bob")
    bobs = tokens.create(user=bob)
    mine = tokens.create(user=alice)
    response = with_token(mine.token).delete(f"/api/v1/tokens/{bobs.token_key}/")
    assert response.status_code == 404
    assert with_token(bobs.token).get("/api/v1/nodes/").status_code == 200


def test_an_expired_token_is_refused(alice):
    _, token = AuthToken.objects.create(user=alice, expiry=timedelta(seconds=-1))
    assert with_token(token).get("/api/v1/nodes/").status_code == 401


def test_anonymous_can_neither_list_nor_revoke():
    assert APIClient().get("/api/v1/tokens/").status_code == 401
    assert APIClient().delete("/api/v1/tokens/abc/").status_code == 401
