"""Acceptance: a fault of a dependency degrades the portal, never makes it answer 500.

A gunicorn portal (two workers) runs against its own throwaway PostgreSQL, a throwaway Redis
broker and a throwaway Redis cache, which each test stops and starts: the cache down, the
database restarted, the database down, the broker down. Every response of every test is
recorded and none may be a 500; the state recovers once the server is back; nothing is lost (the
row counts before and after match, plus what the test itself created).
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import requests

from nodeagent import auth
from tests.ops.servers import (
    ThrowawayPostgres,
    ThrowawayRedis,
    free_port,
    gunicorn,
    manage,
    portal_env,
    postgres_available,
)
from tests.preflight import skip_or_fail

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

AGENT_MASTER_KEY = "faults-agent-master-key-0123456789abcdef"
PASSWORD = "faults-password-1"
SEED = f"""
from django.contrib.auth.models import Group, User
from django.utils import timezone
from knox.models import AuthToken
from inventory.models import Cluster, Interface, Node
team = Group.objects.create(name="netlab")
user = User.objects.create_user("olivia", password="{PASSWORD}")
user.groups.add(team)
cluster = Cluster.objects.create(name="default")
for n in ("node-a", "node-b"):
    node = Node.objects.create(cluster=cluster, name=n, ready=True, collected_at=timezone.now())
    for i in range(4):
        Interface.objects.create(
            node=node, name=f"ens{{i}}f0", identity=f"{{n}}-{{i}}", identity_kind="pci",
            kind="physical", pci_address=f"0000:3b:{{i:02x}}.0", state="free",
            reason="physical NIC: no address, no master, not in use",
        )
print(AuthToken.objects.create(user=user, expiry=None)[1])
"""
COUNTS = """
from django.contrib.auth.models import User
from inventory.models import HistoryEntry, Interface, Node, Reservation
print(Node.objects.count(), Interface.objects.count(), Reservation.objects.count(),
      User.objects.count(), HistoryEntry.objects.count())
"""


@dataclass
class Portal:
    base: str
    env: dict[str, str]
    token: str
    session: requests.Session
    postgres: ThrowawayPostgres
    broker: ThrowawayRedis
    cache: ThrowawayRedis
    answers: list[tuple[str, str, int]] = field(default_factory=list)
    _free_nics: Iterator[int] = field(default_factory=lambda: iter(()))

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        response = self.session.request(method, self.base + path, timeout=30, **kwargs)
        self.answers.append((method, path, response.status_code))
        return response

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = {"Authorization": f"Token {self.token}", **kwargs.pop("headers", {})}
        return self.request(method, path, headers=headers, **kwargs)

    def reserve(self) -> requests.Response:
        return self.api(
            "POST",
            "/api/v1/reservations/",
            json={
                "interface": next(self._free_nics),
                "team": "netlab",
                "purpose": "fault test",
                "expires_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
            },
        )

    def hint(self, node: str = "node-a") -> requests.Response:
        """A hint signed as the node's agent signs it (a fresh nonce each time)."""
        return self.send_hint(*signed_hint(node))

    def send_hint(self, body: bytes, header: str) -> requests.Response:
        return self.request(
            "POST",
            "/api/v1/agent-hints/",
            data=body,
            headers={"Authorization": header, "Content-Type": "application/json"},
        )

    def readyz(self) -> tuple[int, dict]:
        response = self.request("GET", "/readyz")
        return response.status_code, response.json()

    def counts(self) -> list[int]:
        output = manage(self.env, "shell", "-v", "0", "-c", COUNTS)
        return [int(n) for n in output.strip().splitlines()[-1].split()]

    def tour(self) -> dict[str, requests.Response]:
        """The pages and endpoints the issue names, once each."""
        return {
            "fleet": self.request("GET", "/"),
            "node page": self.request("GET", "/nodes/node-a/"),
            "nodes api": self.api("GET", "/api/v1/nodes/"),
            "node api": self.api("GET", "/api/v1/nodes/?name=node-b"),
            "interfaces api": self.api("GET", "/api/v1/interfaces/?brief=true"),
            "metrics": self.request("GET", "/metrics"),
        }


def signed_hint(node: str) -> tuple[bytes, str]:
    body = json.dumps({"node": node, "reason": "netlink"}).encode()
    key = auth.derive_node_key(AGENT_MASTER_KEY.encode(), cluster="default", node=node)
    header, _ = auth.sign_request(
        [key],
        direction=auth.AGENT_TO_PORTAL,
        method="POST",
        path="/api/v1/agent-hints/",
        node=node,
        body=body,
    )
    return body, header


def wait_until(condition: Callable[[], bool], deadline: float = 60.0) -> None:
    """Waits for a state (a server starting, a pool reconnecting); asserts nothing on timing."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached")


@pytest.fixture(scope="module")
def servers(tmp_path_factory) -> Iterator[tuple[ThrowawayPostgres, ThrowawayRedis, ThrowawayRedis]]:
    why_not = postgres_available()
    if why_not:
        skip_or_fail(f"no throwaway PostgreSQL: {why_not}")
    postgres, broker, cache = ThrowawayPostgres(), ThrowawayRedis(), ThrowawayRedis()
    try:
        postgres.start()
        broker.start()
        cache.start()
        yield postgres, broker, cache
    finally:
        for redis_server in (broker, cache):
            if redis_server.process is not None:
                redis_server.stop()
        postgres.destroy()


@pytest.fixture(scope="module")
def portal(servers, tmp_path_factory) -> Iterator[Portal]:
    postgres, broker, cache = servers
    var = tmp_path_factory.mktemp("portal")
    env = portal_env(
        database_url=postgres.url,
        broker_url=broker.url,
        cache_url=cache.url,
        var_dir=var / "var",
        KUBECONFIG=str(var / "no-cluster"),  # publishing reservation annotations just logs
        NICPORTAL_AGENT_MASTER_KEY=AGENT_MASTER_KEY,
        NICPORTAL_DB_CONNECT_TIMEOUT="2",
    )
    manage(env, "migrate", "--no-input")
    token = manage(env, "shell", "-v", "0", "-c", SEED).strip().splitlines()[-1]
    port = free_port()
    web = gunicorn(env, port, var / "gunicorn.log", workers=2)
    web.start()
    base = f"http://127.0.0.1:{port}"
    session = requests.Session()
    try:
        wait_until(lambda: _answers(base + "/healthz"))
        login = session.get(base + "/accounts/login/", timeout=10)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login.text).group(1)
        done = session.post(
            base + "/accounts/login/",
            data={"username": "olivia", "password": PASSWORD, "csrfmiddlewaretoken": csrf},
            timeout=10,
        )
        assert done.status_code == 200 and "sessionid" in session.cookies, done.text[:500]
        interface_ids = [
            row["id"]
            for row in session.get(
                base + "/api/v1/interfaces/?limit=100&brief=true",
                headers={"Authorization": f"Token {token}"},
                timeout=10,
            ).json()["results"]
        ]
        portal = Portal(base, env, token, session, postgres, broker, cache)
        portal._free_nics = iter(interface_ids)
        yield portal
        no_500 = [answer for answer in portal.answers if answer[2] >= 500 and answer[2] != 503]
        assert not no_500, f"server errors: {no_500}\n{web.log()[-4000:]}"
    finally:
        web.stop()


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def checked(portal) -> Iterator[Portal]:
    """Per test: no 500 among the answers it caused, and every server up again at the end."""
    start = len(portal.answers)
    try:
        yield portal
        errors = [a for a in portal.answers[start:] if a[2] == 500]
        assert not errors, errors
    finally:
        for server in (portal.broker, portal.cache):
            if server.process is None:
                server.start()
        if not _postgres_up(portal.postgres):
            portal.postgres.start()


def _postgres_up(postgres: ThrowawayPostgres) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", postgres.port), timeout=1):
            return True
    except OSError:
        return False


def test_with_the_cache_down_everything_answers_from_the_database(checked):
    portal = checked
    before = portal.counts()
    assert portal.readyz()[1]["checks"]["cache"]["status"] == "ok"

    portal.cache.stop()
    for name, response in portal.tour().items():
        assert response.status_code == 200, (name, response.status_code, response.text[:300])
    assert "node-a" in portal.request("GET", "/nodes/node-a/").text
    assert portal.reserve().status_code == 201
    # No cache to debounce with: each hint queues its refresh (the broker is up).
    assert [portal.hint().json()["queued"] for _ in range(3)] == [True, True, True]
    # Nor to remember nonces with: the database does, so a hint is still accepted once only
    # (the two web workers share it).
    once = signed_hint("node-b")
    assert portal.send_hint(*once).status_code == 202
    for _ in range(2):
        replayed = portal.send_hint(*once)
        assert replayed.status_code == 401 and replayed.json()["reason"] == "replayed"
    status, body = portal.readyz()
    assert status == 200, body
    assert body["status"] == "degraded"
    assert body["checks"]["cache"]["status"] == "degraded"
    assert body["checks"]["cache"]["error"]
    assert body["failed"] == []

    portal.cache.start()
    wait_until(lambda: portal.readyz()[1]["checks"]["cache"]["status"] == "ok")
    assert portal.hint().json()["queued"] is True
    after = portal.counts()
    assert after[:2] == before[:2]
    assert after[2] == before[2] + 1  # the reservation made while the cache was down


def test_a_database_restart_costs_no_request(checked):
    portal = checked
    before = portal.counts()
    # Every worker holds a persistent connection before the restart.
    for _ in range(6):
        assert portal.api("GET", "/api/v1/nodes/").status_code == 200

    portal.postgres.stop()
    portal.postgres.start()
    for _ in range(3):
        for name, response in portal.tour().items():
            assert response.status_code == 200, (name, response.status_code, response.text[:300])
    assert portal.reserve().status_code == 201
    assert portal.readyz()[0] == 200
    after = portal.counts()
    assert after[:2] == before[:2] and after[2] == before[2] + 1


def test_with_the_database_down_every_door_answers_503_with_retry_after(checked):
    portal = checked
    before = portal.counts()
    portal.postgres.stop()

    answers = {
        **portal.tour(),
        "reserve": portal.reserve(),
        "hint": portal.hint(),
        "extend": portal.api("POST", "/api/v1/reservations/1/extend/", json={}),
    }
    for name, response in answers.items():
        assert response.status_code == 503, (name, response.status_code, response.text[:300])
        assert response.headers["Retry-After"].isdigit(), name
    assert answers["nodes api"].json() == {"detail": "The database is unavailable; retry shortly."}
    assert answers["fleet"].headers["Content-Type"].startswith("text/html")
    assert answers["metrics"].headers["Content-Type"].startswith("text/plain")
    status, body = portal.readyz()
    assert status == 503 and body["failed"] == ["database"]
    assert portal.request("GET", "/healthz").status_code == 200

    portal.postgres.start()
    wait_until(lambda: portal.readyz()[0] == 200)
    for name, response in portal.tour().items():
        assert response.status_code == 200, (name, response.status_code)
    assert portal.counts() == before


def test_with_the_broker_down_pages_and_reservations_work_and_hints_ask_to_retry(checked):
    portal = checked
    before = portal.counts()
    portal.broker.stop()

    for name, response in portal.tour().items():
        assert response.status_code == 200, (name, response.status_code)
    assert portal.reserve().status_code == 201
    hint = portal.hint("node-b")
    assert hint.status_code == 503
    assert hint.headers["Retry-After"].isdigit()
    assert "task queue" in hint.json()["detail"]
    status, body = portal.readyz()
    assert status == 503 and body["failed"] == ["broker"]

    portal.broker.start()
    wait_until(lambda: portal.readyz()[0] == 200)
    # The failed hint left no debounce behind: its retry is queued, not folded away.
    retry = portal.hint("node-b")
    assert retry.status_code == 202 and retry.json()["queued"] is True
    after = portal.counts()
    assert after[:2] == before[:2] and after[2] == before[2] + 1
