"""The Redis cache is an optimisation: with a real Redis that the test stops, the locks fall back
to PostgreSQL advisory locks (still exclusive), the sweep status falls back to the Cluster row,
the nonces of agent hints are remembered in the database (a hint is still accepted once), and
/readyz says the cache is degraded, by name."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.db import connection, connections
from django.utils import timezone

from inventory import health, tasks
from inventory.models import AgentNonce, Cluster, Node
from inventory.services import polling
from nodeagent import auth
from tests.ops.servers import ThrowawayRedis

pytestmark = [pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def redis_cache(settings) -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {
                "IGNORE_EXCEPTIONS": True,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "SOCKET_TIMEOUT": 0.5,
            },
        }
    }
    try:
        yield server
    finally:
        if server.process is not None:
            server.stop()


def held_elsewhere(name: str) -> bool:
    """Whether another thread (another database connection) gets the lock now."""
    result: list[bool] = []

    def other() -> None:
        try:
            with polling.cache_lock(name, timeout=10) as held:
                result.append(held)
        finally:
            connections.close_all()

    thread = threading.Thread(target=other)
    thread.start()
    thread.join(30)
    return result[0]


def test_a_lock_is_a_cache_lock_while_redis_answers(redis_cache):
    with polling.cache_lock("sweep", timeout=10) as held:
        assert held
        assert not held_elsewhere("sweep")
    assert held_elsewhere("sweep")


@pytest.mark.postgres
def test_a_lock_falls_back_to_an_exclusive_database_lock_while_redis_is_down(redis_cache):
    if connection.vendor != "postgresql":
        pytest.skip("advisory locks are PostgreSQL's")
    redis_cache.stop()
    with polling.cache_lock("sweep", timeout=10) as held:
        assert held
        assert not held_elsewhere("sweep")
        assert held_elsewhere("node:1")  # another lock is another key
    assert held_elsewhere("sweep")


def test_the_sweep_status_falls_back_to_the_cluster_row_while_redis_is_down(redis_cache):
    cluster = Cluster.objects.create(name="default")
    polling.record_sweep(cluster, polling.SweepReport(nodes=2, agents_ok=2, duration=0.1))
    first = Cluster.objects.get(pk=cluster.pk).last_sweep_ok_at
    assert health.check_sweep()["status"] == "ok"

    redis_cache.stop()
    cluster.refresh_from_db()
    polling.record_sweep(cluster, polling.SweepReport(nodes=2, agents_ok=2, duration=0.1))
    # Within five minutes the row is not written while the cache keeps the status; without the
    # cache, every sweep writes it, so that /readyz and /metrics stay true.
    assert Cluster.objects.get(pk=cluster.pk).last_sweep_ok_at > first
    sweep = health.check_sweep()
    assert sweep["status"] == "ok", sweep


def test_readyz_names_the_cache_as_degraded_while_redis_is_down(redis_cache, client):
    assert health.check_cache() == {"status": "ok", "backend": "redis"}
    redis_cache.stop()
    check = health.check_cache()
    assert check["status"] == "degraded"
    assert check["backend"] == "redis"
    assert "Connection refused" in check["error"] or "Error" in check["error"]
    body = client.get("/readyz").json()
    assert body["checks"]["cache"]["status"] == "degraded"
    assert "cache" not in body["failed"]


HINT_URL = "/api/v1/agent-hints/"
MASTER = "cache-outage-master-key-0123456789abcdef"


@pytest.fixture
def hint_node(settings, monkeypatch) -> list:
    """node-a of the configured cluster; returns the refreshes its hints queued."""
    settings.AGENT_MASTER_KEY = MASTER
    settings.AGENT_MASTER_KEY_PREVIOUS = ""
    settings.CLUSTER_NAME = "default"
    Node.objects.create(cluster=Cluster.objects.create(name="default"), name="node-a")
    queued: list = []
    monkeypatch.setattr(tasks.refresh_node, "apply_async", lambda args, **kw: queued.append(args))
    return queued


def signed_hint() -> tuple[bytes, str]:
    body = json.dumps({"node": "node-a", "reason": "netlink"}).encode()
    key = auth.derive_node_key(MASTER.encode(), cluster="default", node="node-a")
    header, _ = auth.sign_request(
        [key],
        direction=auth.AGENT_TO_PORTAL,
        method="POST",
        path=HINT_URL,
        node="node-a",
        body=body,
    )
    return body, header


def send(client, hint: tuple[bytes, str]):
    body, header = hint
    return client.post(HINT_URL, body, content_type="application/json", HTTP_AUTHORIZATION=header)


def test_hint_nonces_stay_in_the_cache_while_redis_answers(redis_cache, hint_node, client):
    hint = signed_hint()
    assert send(client, hint).status_code == 202
    replayed = send(client, hint)
    assert replayed.status_code == 401 and replayed.json()["reason"] == "replayed"
    assert AgentNonce.objects.count() == 0


def test_a_hint_is_accepted_once_while_redis_is_down(redis_cache, hint_node, client):
    redis_cache.stop()
    hint = signed_hint()
    first = send(client, hint)
    assert first.status_code == 202, first.content
    replayed = send(client, hint)
    assert replayed.status_code == 401 and replayed.json()["reason"] == "replayed"
    # Another hint (a new nonce) is accepted, and queued: nothing to debounce with.
    assert send(client, signed_hint()).status_code == 202
    assert len(hint_node) == 2
    assert AgentNonce.objects.filter(node="node-a").count() == 2


def test_expired_nonces_leave_the_database(redis_cache, hint_node, client):
    redis_cache.stop()
    AgentNonce.objects.create(
        node="node-a", nonce="0" * 32, expires_at=timezone.now() - timedelta(seconds=1)
    )
    assert send(client, signed_hint()).status_code == 202
    assert not AgentNonce.objects.filter(nonce="0" * 32).exists()
