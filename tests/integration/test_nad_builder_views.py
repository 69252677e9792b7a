"""The NAD builder's preview: quiet until the user has picked or typed something."""

from __future__ import annotations

import pytest
from django.urls import reverse

from tests.factories import make_interface, make_node, make_team, make_user

pytestmark = pytest.mark.django_db

UNTOUCHED = {
    "namespace": "default",
    "selector": "auto",
    "pod_interface": "net1",
    "cni_version": "auto",
    "ipam_type": "none",
}


@pytest.fixture
def logged_in(client):
    client.force_login(make_user("alice", teams=[make_team("platform")]))
    return client


def preview(client, data) -> str:
    response = client.post(reverse("inventory:nad-preview"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    return response.content.decode()


def test_the_empty_builder_shows_the_hint_and_no_errors(logged_in):
    page = preview(logged_in, UNTOUCHED)
    assert "Pick an interface and a name" in page
    assert "errorlist" not in page and "s-missing" not in page and "NO_DEVICES" not in page


def test_once_something_is_typed_the_findings_appear(logged_in):
    page = preview(logged_in, {**UNTOUCHED, "name": "Bad_Name"})
    assert 'data-code="NAME_INVALID"' in page and 'data-code="NO_DEVICES"' in page


def test_a_picked_interface_alone_is_enough_to_preview(logged_in, settings):
    node = make_node(name="worker-1")
    settings.CLUSTER_NAME = node.cluster.name
    nic = make_interface(node, name="ens1f0")
    page = preview(logged_in, {**UNTOUCHED, "interfaces": [str(nic.pk)]})
    assert 'data-code="NAME_INVALID"' in page
