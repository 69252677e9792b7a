"""The agent hint endpoint: its own credential, specific errors, nothing else."""

from __future__ import annotations

import pytest

from inventory.models import Cluster, Node

pytestmark = pytest.mark.django_db

URL = "/api/v1/agent-hints/"


@pytest.fixture
def node(settings):
    settings.AGENT_TOKEN = "s3cret-agent-token"
    settings.CLUSTER_NAME = "default"
    cluster = Cluster.objects.create(name="default")
    return Node.objects.create(cluster=cluster, name="node-a")


def post(client, body, token="s3cret-agent-token"):
    headers = {"HTTP_AUTHORIZATION": f"Bearer {token}"} if token else {}
    return client.post(URL, body, content_type="application/json", **headers)


@pytest.mark.parametrize("token", ["", "wrong", "s3cret-agent-token-but-longer"])
def test_it_rejects_a_missing_or_wrong_token_with_401(client, node, token):
    response = post(client, {"node": "node-a"}, token=token)
    assert response.status_code == 401
    assert response.json() == {"detail": "agent token missing or rejected"}


def test_it_rejects_a_user_session_without_the_agent_token(client, node, django_user_model):
    client.force_login(django_user_model.objects.create_user("alice"))
    assert post(client, {"node": "node-a"}, token="").status_code == 401


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"node": 5}, "a node name (string) is required"),
        ({}, "a node name (string) is required"),
    ],
)
def test_it_answers_400_naming_the_field(client, node, body, message):
    response = post(client, body)
    assert response.status_code == 400
    assert response.json() == {"node": [message]}


def test_it_answers_404_for_a_node_it_does_not_know(client, node):
    response = post(client, {"node": "<b>ghost</b>"})
    assert response.status_code == 404
    assert "ghost" in response.json()["node"][0]


def test_it_queues_a_refresh_for_a_known_node(client, node, monkeypatch):
    queued = []
    from inventory import tasks

    monkeypatch.setattr(tasks.refresh_node, "apply_async", lambda args, **kw: queued.append(args))
    response = post(client, {"node": "node-a", "reason": "netlink"})
    assert response.status_code == 202
    assert queued == [(node.pk,)]
