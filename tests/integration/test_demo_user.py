"""The lab's demo user (`manage.py seeddemo`): staff that finds a useful admin, not an empty one."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command

pytestmark = pytest.mark.django_db


def test_the_demo_user_sees_users_and_teams_in_the_admin(client):
    call_command("seeddemo", stdout=io.StringIO())
    call_command("seeddemo", stdout=io.StringIO())  # idempotent
    assert client.login(username="demo", password="demo")
    page = client.get("/admin/").content.decode()
    assert "have permission to view or edit anything" not in page
    assert "/admin/auth/group/" in page and "/admin/auth/user/" in page
    assert client.get("/admin/auth/group/add/").status_code == 200
    # Seeing users is not editing them.
    assert client.get("/admin/auth/user/add/").status_code == 403
