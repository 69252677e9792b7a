"""The permission cast (owner, team-mate, outsider, staff, anonymous) and their API clients."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.api.builders import make_free_interface, make_node, make_people, token_for


@pytest.fixture
def people(db):
    return make_people()


@pytest.fixture
def nic(db):
    return make_free_interface(make_node("node-a"), "ens1f0")


@pytest.fixture
def client_for(db):
    """An APIClient authenticated with a real knox token of `user` (None: anonymous)."""

    def build(user=None) -> APIClient:
        client = APIClient()
        if user is not None:
            client.credentials(HTTP_AUTHORIZATION=f"Token {token_for(user)}")
        return client

    return build
