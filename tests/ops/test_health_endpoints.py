"""/healthz and /readyz in-process: what each check reports and when the answer is 503."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from inventory import health
from inventory.models import Cluster
from inventory.services import polling
from tests.ops.servers import ThrowawayRedis, free_port

pytestmark = [pytest.mark.urls("nicportal.urls_ops"), pytest.mark.django_db]


@pytest.fixture
def filesystem_broker(tmp_path, settings):
    queue = tmp_path / "queue"
    queue.mkdir()
    settings.CELERY_BROKER_URL = "filesystem://"
    settings.CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(queue),
        "data_folder_out": str(queue),
    }
    return queue


def test_healthz_answers_ok_without_touching_the_database(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_it_refuses_post_on_healthz(client):
    assert client.post("/healthz").status_code == 405


def test_readyz_is_ready_but_degraded_before_the_first_sweep(client, filesystem_broker):
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["failed"] == []
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["broker"] == {"status": "ok", "transport": "filesystem"}
    assert body["checks"]["sweep"]["status"] == "degraded"


def test_readyz_is_ok_after_a_fresh_successful_sweep(client, filesystem_broker, settings):
    cluster = Cluster.objects.create(name=settings.CLUSTER_NAME)
    polling.record_sweep(cluster, polling.SweepReport(nodes=3, agents_ok=3, duration=0.4))
    body = client.get("/readyz").json()
    assert body["status"] == "ok"
    sweep = body["checks"]["sweep"]
    assert sweep["status"] == "ok"
    assert sweep["nodes"] == 3 and sweep["agents_ok"] == 3 and sweep["last_ok"] is True


def test_a_stale_sweep_is_degraded_not_unready(client, filesystem_broker, settings):
    settings.POLL_INTERVAL = 30.0
    long_ago = timezone.now() - timedelta(seconds=91)
    Cluster.objects.create(name=settings.CLUSTER_NAME, last_sweep_ok_at=long_ago)
    response = client.get("/readyz")
    assert response.status_code == 200
    sweep = response.json()["checks"]["sweep"]
    assert sweep["status"] == "degraded"
    assert sweep["stale_after"] == 90.0
    assert "91s ago" in sweep["detail"]


def test_a_sweep_within_three_poll_intervals_is_fresh(settings):
    settings.POLL_INTERVAL = 30.0
    now = timezone.now()
    Cluster.objects.create(name=settings.CLUSTER_NAME, last_sweep_ok_at=now - timedelta(seconds=89))
    assert health.check_sweep(now=now)["status"] == "ok"


def test_a_failed_last_sweep_is_degraded_with_its_error(client, filesystem_broker, settings):
    cluster = Cluster.objects.create(name=settings.CLUSTER_NAME, last_sweep_ok_at=timezone.now())
    polling.record_sweep(cluster, polling.SweepReport(cluster_error="API unreachable"))
    sweep = client.get("/readyz").json()["checks"]["sweep"]
    assert sweep["status"] == "degraded"
    assert sweep["last_ok"] is False
    assert sweep["error"] == "API unreachable"


def test_readyz_is_503_naming_the_broker_when_redis_does_not_answer(client):
    with override_settings(CELERY_BROKER_URL=f"redis://127.0.0.1:{free_port()}/0"):
        response = client.get("/readyz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "failed"
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"]["transport"] == "redis"
    assert body["checks"]["database"]["status"] == "ok"


def test_readyz_is_503_when_the_filesystem_broker_folder_is_missing(client, filesystem_broker):
    filesystem_broker.rmdir()
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["failed"] == ["broker"]
    assert "missing" in response.json()["checks"]["broker"]["error"]


@pytest.mark.redis
def test_the_broker_check_pings_a_real_redis():
    server = ThrowawayRedis()
    server.start()
    try:
        assert health.check_broker(server.url) == {"status": "ok", "transport": "redis"}
    finally:
        server.stop()
    assert health.check_broker(server.url)["status"] == "failed"
