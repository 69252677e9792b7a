"""The agent hint endpoint: signed with the node's own key, once, for that node only."""

from __future__ import annotations

import json
import time

import pytest
from django.core.cache import cache

from inventory import tasks
from inventory.models import Cluster, Node
from nodeagent import auth

pytestmark = pytest.mark.django_db

URL = "/api/v1/agent-hints/"
MASTER = "hint-tests-master-key-0123456789abcdef"
PREVIOUS = "hint-tests-previous-master-0123456789"


def node_key(node: str, master: str = MASTER, cluster: str = "default") -> bytes:
    return auth.derive_node_key(master.encode(), cluster=cluster, node=node)


@pytest.fixture
def nodes(settings):
    settings.AGENT_MASTER_KEY = MASTER
    settings.AGENT_MASTER_KEY_PREVIOUS = ""
    settings.CLUSTER_NAME = "default"
    cluster = Cluster.objects.create(name="default")
    return {name: Node.objects.create(cluster=cluster, name=name) for name in ("node-a", "node-b")}


@pytest.fixture
def queued(monkeypatch) -> list:
    """Refreshes the endpoint queued (the Celery call is the only effect of a hint)."""
    calls: list = []
    monkeypatch.setattr(tasks.refresh_node, "apply_async", lambda args, **kw: calls.append(args))
    return calls


def post(client, body, *, node="node-a", key=None, path=URL, now=None, raw=None, header=None):
    """POST a hint signed as the agent of `node` signs it (key: that node's key by default)."""
    data = raw if raw is not None else json.dumps(body).encode()
    if header is None:
        header, _ = auth.sign_request(
            [key or node_key(node)],
            direction=auth.AGENT_TO_PORTAL,
            method="POST",
            path=path,
            node=node,
            body=data,
            now=now,
        )
    extra = {"HTTP_AUTHORIZATION": header} if header else {}
    return client.post(URL, data, content_type="application/json", **extra)


def signed_header(body: dict, node: str = "node-a") -> str:
    header, _ = auth.sign_request(
        [node_key(node)],
        direction=auth.AGENT_TO_PORTAL,
        method="POST",
        path=URL,
        node=node,
        body=json.dumps(body).encode(),
    )
    return header


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"header": ""}, "missing"),
        ({"header": "Bearer s3cret-agent-token"}, "wrong_scheme"),
        ({"key": node_key("node-a", master="some-other-master-0123456789abcdef")}, "unknown_key"),
        ({"key": node_key("node-a", cluster="another-cluster")}, "unknown_key"),
        ({"now": time.time() - 600}, "clock_skew"),
        ({"path": "/api/v1/other/"}, "bad_signature"),
        # Signed when the test runs, not when it is collected: a signature older than the
        # clock-skew limit would be refused for that reason first.
        ({"header": lambda: signed_header({"node": "node-a", "reason": "x"})}, "bad_signature"),
    ],
    ids=[
        "missing",
        "bearer-token",
        "another-master",
        "another-cluster",
        "stale",
        "signed-for-another-path",
        "signed-for-another-body",
    ],
)
def test_it_refuses_an_unauthenticated_hint_with_401_and_queues_nothing(
    client, nodes, queued, kwargs, reason
):
    kwargs = {name: value() if callable(value) else value for name, value in kwargs.items()}
    response = post(client, {"node": "node-a"}, **kwargs)
    assert response.status_code == 401
    assert response.json() == {"detail": "agent signature missing or rejected", "reason": reason}
    assert response["WWW-Authenticate"] == auth.SCHEME
    assert queued == []


def test_a_replayed_hint_is_refused(client, nodes, queued):
    data = json.dumps({"node": "node-a"}).encode()
    header = signed_header({"node": "node-a"})
    first = post(client, None, raw=data, header=header)
    second = post(client, None, raw=data, header=header)
    assert first.status_code == 202
    assert second.status_code == 401 and second.json()["reason"] == "replayed"
    assert len(queued) == 1


def test_a_user_session_is_no_agent_credential(client, nodes, queued, django_user_model):
    client.force_login(django_user_model.objects.create_user("alice"))
    assert post(client, {"node": "node-a"}, header="").status_code == 401
    assert queued == []


def test_a_hint_signed_for_node_a_naming_node_b_is_403_and_changes_nothing(client, nodes, queued):
    before = list(Node.objects.order_by("pk").values())
    response = post(client, {"node": "node-b"}, node="node-a")
    assert response.status_code == 403
    assert response.json() == {
        "node": ["a hint signed with node node-a's key can refresh that node only"]
    }
    assert queued == []
    assert cache.get(f"hint:{nodes['node-b'].pk}") is None
    assert cache.get(f"hint:{nodes['node-a'].pk}") is None
    assert list(Node.objects.order_by("pk").values()) == before


def test_node_b_own_key_refreshes_node_b(client, nodes, queued):
    response = post(client, {"node": "node-b"}, node="node-b")
    assert response.status_code == 202
    assert queued == [(nodes["node-b"].pk,)]


def test_the_previous_master_is_accepted_only_while_it_is_configured(
    client, nodes, queued, settings
):
    old_key = node_key("node-a", master=PREVIOUS)
    assert post(client, {"node": "node-a"}, key=old_key).status_code == 401
    settings.AGENT_MASTER_KEY_PREVIOUS = PREVIOUS
    assert post(client, {"node": "node-a"}, key=old_key).status_code == 202
    assert post(client, {"node": "node-a"}).status_code == 202  # the current one still works


def test_without_a_master_key_every_hint_is_refused(client, nodes, queued, settings):
    settings.AGENT_MASTER_KEY = ""
    response = post(client, {"node": "node-a"})
    assert response.status_code == 401 and response.json()["reason"] == "no_key"
    assert queued == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"node": 5}, "a node name (string) is required"),
        ({}, "a node name (string) is required"),
    ],
)
def test_it_answers_400_naming_the_field(client, nodes, queued, body, message):
    raw = body.encode() if isinstance(body, str) else None
    response = post(client, body, raw=raw)
    assert response.status_code == 400
    assert response.json() == {"node": [message]}
    assert queued == []


def test_a_body_that_is_not_json_is_a_400_saying_so(client, nodes, queued):
    response = post(client, None, raw=b"not json")
    assert response.status_code == 400
    assert response.json()["detail"].startswith("Not valid JSON: ")
    assert queued == []


def test_an_unknown_field_is_a_400_naming_it(client, nodes, queued):
    response = post(client, {"node": "node-a", "nodes": ["node-b"]})
    assert response.status_code == 400
    assert response.json() == {"nodes": ["Unknown field. Known fields: node, reason."]}
    assert queued == []


def test_it_answers_404_for_a_node_it_does_not_know(client, nodes, queued):
    response = post(client, {"node": "ghost"}, node="ghost")
    assert response.status_code == 404
    assert "ghost" in response.json()["node"][0]
    assert queued == []


def test_it_queues_a_refresh_for_a_known_node(client, nodes, queued):
    response = post(client, {"node": "node-a", "reason": "netlink"})
    assert response.status_code == 202
    assert queued == [(nodes["node-a"].pk,)]
