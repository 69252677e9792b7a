"""Only real agents are agents, and no secret goes to anything else (the lab, end to end).

An attacker who may create pods makes one that looks like node-a's agent: the agent label, a
container port named `agent`, hostNetwork, and a pod IP that is one of node-a's addresses. Behind
it runs a real HTTP server (the "fake agent") that records every request and answers with a
forged snapshot in which node-a's primary NIC eth0 carries nothing, so that it would look free.

Whatever the variant (another namespace; the agents' namespace without the agent DaemonSet as
owner; a forged ownerReference), the portal never contacts it, node-a/eth0 stays `system`, the
NAD builder refuses eth0, and the node page, the metric, the history and the log name the pod.
And if the portal is pointed straight at the fake agent, what reaches it is worth nothing: no key
travels, the forged answer is refused, and the captured request opens no real agent.
"""

from __future__ import annotations

import http.server
import json
import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from django.test import Client
from django.utils.html import escape
from rest_framework.test import APIClient

from inventory.models import HistoryEntry, Interface, Node
from inventory.services import polling
from nodeagent import auth
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]


class FakeAgent(http.server.ThreadingHTTPServer):
    """A real HTTP server posing as an agent: records every request, answers a forged snapshot
    (optionally signed with a key of its own choosing: it has none of the real ones)."""

    daemon_threads = True

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.forged: dict = {}
        self.sign_with: bytes | None = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                length = int(self.headers.get("Content-Length") or 0)
                server.requests.append(
                    {
                        "path": self.path,
                        "headers": dict(self.headers),
                        "body": self.rfile.read(length) if length else b"",
                    }
                )
                body = json.dumps(server.forged).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("ETag", '"forged"')
                if server.sign_with is not None:
                    request = auth.parse_authorization(self.headers.get("Authorization"))
                    signature = auth.sign_answer(
                        server.sign_with,
                        node=request.node,
                        nonce=request.nonce,
                        status=200,
                        etag='"forged"',
                        body=body,
                    )
                    self.send_header(auth.SIGNATURE_HEADER, signature)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def fake_agent(lab_portal) -> Iterator[FakeAgent]:
    server = FakeAgent()
    server.forged = forged_snapshot(lab_portal)
    yield server
    server.shutdown()
    server.server_close()


def real_snapshot(lab, node: str) -> dict:
    """node's snapshot, read from its real agent as the portal reads it."""
    url = lab.node(node).agent_url
    header, _ = auth.sign_request(
        [lab.agent_key(node)],
        direction=auth.PORTAL_TO_AGENT,
        method="GET",
        authority=url.removeprefix("http://"),
        path="/v1/snapshot",
        node=node,
    )
    request = urllib.request.Request(url + "/v1/snapshot", headers={"Authorization": header})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def forged_snapshot(lab) -> dict:
    """node-a's real snapshot, but eth0 without addresses or default route: it would be free."""
    document = real_snapshot(lab, "node-a")
    for link in document["links"]:
        if link["name"] == "eth0":
            link.update(addresses=[], default_route_v4=False, default_route_v6=False)
    return document


def eth0() -> Interface:
    return Interface.objects.get(node__name="node-a", name="eth0")


def render_eth0() -> dict:
    team = make_team("blue")
    client = APIClient()
    client.force_authenticate(make_user("mallory", teams=[team]))
    response = client.post(
        "/api/v1/nads/render/",
        {"namespace": "default", "name": "steal-eth0", "interfaces": [eth0().pk], "team": "blue"}
        | {"selector": "hwaddr"},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def forged_owner(lab, uid: str | None = None) -> dict:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "name": "nicportal-agent",
        "uid": uid or "00000000-0000-4000-8000-000000000000",
        "controller": True,
    }


VARIANTS = {
    # The attack as reported: an ordinary namespace, the label and a port named `agent`.
    "another-namespace": ("zzz", None, "in namespace zzz, not the agents' namespace nicportal"),
    "agent-namespace-no-owner": (
        "nicportal",
        None,
        "not controlled by the DaemonSet nicportal/nicportal-agent (no controller)",
    ),
    "agent-namespace-replicaset": (
        "nicportal",
        {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "evil-7d9f", "uid": "r1"}
        | {"controller": True},
        "controlled by ReplicaSet evil-7d9f, not by the DaemonSet nicportal/nicportal-agent",
    ),
    "forged-daemonset-reference": (
        "nicportal",
        "forged",
        "names the DaemonSet nicportal/nicportal-agent with another uid",
    ),
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_an_agent_lookalike_is_ignored_and_shown(
    lab_portal, fake_agent, variant, caplog, client, settings
):
    lab = lab_portal
    namespace, owner, reason = VARIANTS[variant]
    if owner == "forged":
        owner = forged_owner(lab)
    # In the agents' namespace "evil-agent" sorts before the real agent pods: were it accepted,
    # it would become node-a's agent. In any namespace, it must be listed as a rogue.
    lab.create_agent_lookalike(namespace, "evil-agent", "node-a", port=fake_agent.port, owner=owner)
    assert eth0().state == "system"

    with caplog.at_level(logging.WARNING):
        report = polling.sweep_inline(workers=2)

    assert report.cluster_error == ""
    # Nothing reached the fake agent: no request, so no secret and no signature either.
    assert fake_agent.requests == []
    node = Node.objects.get(name="node-a")
    assert node.agent_url == lab.node("node-a").agent_url
    assert node.agent_error == ""
    # The facts are the real agent's: eth0 carries node-a's address and default route.
    assert eth0().state == "system"
    assert render_eth0()["ok"] is False
    # Shown: on the node page, in the node's history, in the log and in the metric.
    assert node.rogue_agents == [
        {
            "pod": f"{namespace}/evil-agent",
            "pod_ip": "127.0.0.1",
            "reason": node.rogue_agents[0]["reason"],
        }
    ]
    assert node.rogue_agents[0]["reason"].startswith(reason)
    client.force_login(make_user("viewer"))
    page = client.get("/nodes/node-a/").content.decode()
    assert f"{namespace}/evil-agent" in page and escape(reason) in page
    assert HistoryEntry.objects.filter(
        node=node, message__startswith=f"pod {namespace}/evil-agent looks like an agent"
    ).exists()
    assert f"rogue agent pod {namespace}/evil-agent" in caplog.text
    metrics = Client().get("/metrics").content.decode()
    assert 'nicportal_rogue_agents{cluster="lab"} 1.0' in metrics

    # A second sweep: still ignored, still shown, no second history entry.
    polling.sweep_inline(workers=2)
    assert fake_agent.requests == []
    assert Node.objects.get(name="node-a").rogue_agents == node.rogue_agents
    assert HistoryEntry.objects.filter(message__contains="looks like an agent").count() == 1


def test_the_page_and_metric_clear_once_the_lookalike_is_gone(lab_portal, fake_agent, client):
    lab = lab_portal
    lab.create_agent_lookalike("zzz", "evil-agent", "node-a", port=fake_agent.port)
    polling.sweep_inline(workers=2)
    assert Node.objects.get(name="node-a").rogue_agents
    lab.reset()
    polling.sweep_inline(workers=2)
    assert Node.objects.get(name="node-a").rogue_agents == []
    assert 'nicportal_rogue_agents{cluster="lab"} 0.0' in Client().get("/metrics").content.decode()


@pytest.mark.parametrize("signed_by", [None, "its-own-guess", "node-b"])
def test_even_a_portal_sent_to_the_impostor_gives_it_nothing_reusable(
    lab_portal, fake_agent, signed_by
):
    """Discovery is bypassed on purpose (an operator's URL override pointing at the fake): the
    request carries no key, the forged answer is refused, and what was captured opens nothing."""
    lab = lab_portal
    fake_agent.sign_with = {
        None: None,
        # A key made up by the impostor, or node-b's real key (stolen from node-b): neither is
        # node-a's key.
        "its-own-guess": auth.derive_node_key(
            b"guessed-master-0123456789", cluster="lab", node="node-a"
        ),
        "node-b": lab.agent_key("node-b"),
    }[signed_by]
    Node.objects.filter(name="node-a").update(agent_url_override=fake_agent.url)

    stats = polling.poll_node(Node.objects.get(name="node-a").pk)

    assert stats.agent_failures == 1
    ((request,),) = [fake_agent.requests]
    captured = json.dumps(request["headers"]) + request["body"].decode()
    master = lab.agent_master_key
    node_key = lab.agent_key("node-a")
    for secret in (master, node_key.hex(), node_key.hex().upper(), str(node_key)):
        assert secret not in captured
    assert "Bearer" not in captured and request["body"] == b""
    signed = auth.parse_authorization(request["headers"]["Authorization"])
    assert signed.node == "node-a"
    # The forged snapshot was refused whole: eth0 is still the node's.
    node = Node.objects.get(name="node-a")
    assert "not signed with node node-a's key" in node.agent_error
    assert eth0().state == "system"
    assert render_eth0()["ok"] is False

    # The captured request, forwarded at once to node-a's real agent, opens nothing: it was
    # signed for the fake's address, not the agent's.
    real = lab.node("node-a").agent_url
    forward = urllib.request.Request(
        real + "/v1/snapshot", headers={"Authorization": request["headers"]["Authorization"]}
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(forward, timeout=10)
    assert refused.value.code == 401
    assert json.loads(refused.value.read())["reason"] == "bad_signature"

    # Back on the real agent, the node is read again as before.
    Node.objects.filter(name="node-a").update(agent_url_override="")
    polling.poll_node(Node.objects.get(name="node-a").pk)
    assert Node.objects.get(name="node-a").agent_error == ""


def test_a_hint_signed_for_node_a_naming_node_b_is_refused_and_changes_nothing(
    lab_portal, client, monkeypatch
):
    from inventory import tasks

    queued: list = []
    monkeypatch.setattr(tasks.refresh_node, "apply_async", lambda args, **kw: queued.append(args))
    before = list(Node.objects.order_by("pk").values())
    body = json.dumps({"node": "node-b", "reason": "netlink"}).encode()
    header, _ = auth.sign_request(
        [lab_portal.agent_key("node-a")],  # node-a's agent's own key, as the lab gave it
        direction=auth.AGENT_TO_PORTAL,
        method="POST",
        path="/api/v1/agent-hints/",
        node="node-a",
        body=body,
    )
    response = client.post(
        "/api/v1/agent-hints/", body, content_type="application/json", HTTP_AUTHORIZATION=header
    )
    assert response.status_code == 403
    assert queued == []
    assert list(Node.objects.order_by("pk").values()) == before
