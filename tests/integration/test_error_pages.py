"""The product's own 404 page (never Django's debug page with DEBUG off) and a favicon that
exists on every page, the admin's included."""

from __future__ import annotations

import pytest

from tests.factories import make_team, make_user

pytestmark = pytest.mark.django_db


def test_an_unknown_page_is_the_products_404(client, settings):
    settings.DEBUG = False
    client.force_login(make_user("alice", teams=[make_team("platform")]))
    response = client.get("/no/such/page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found" in page and "/no/such/page/" in page
    assert 'href="/"' in page  # back to the fleet
    assert "URLconf" not in page and "Django" not in page


def test_the_404_page_escapes_the_path(client, settings):
    settings.DEBUG = False
    page = client.get("/<script>alert(1)</script>/").content.decode()
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;" in page


def test_an_unknown_node_is_a_404_page_too(client, settings):
    settings.DEBUG = False
    client.force_login(make_user("alice"))
    response = client.get("/nodes/nowhere/")
    assert response.status_code == 404 and "Page not found" in response.content.decode()


def test_the_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    icon = client.get(response["Location"])
    assert icon.status_code == 200 and b"<svg" in b"".join(icon.streaming_content)


def test_every_page_names_the_icon(client):
    page = client.get("/accounts/login/").content.decode()
    assert 'rel="icon" href="/static/favicon.svg"' in page
