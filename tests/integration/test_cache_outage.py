"""The Redis cache is an optimisation: with a real Redis that the test stops, the locks fall back
to PostgreSQL advisory locks (still exclusive), the sweep status falls back to the Cluster row,
and /readyz says the cache is degraded, by name."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from django.db import connection, connections

from inventory import health
from inventory.models import Cluster
from inventory.services import polling
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
