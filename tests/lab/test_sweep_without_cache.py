"""With the Redis cache down, a sweep of the lab still records the agents' answers: their
contact times go to the Node rows (which every reader falls back to), so no node looks silent
or turns stale because the cache did not keep what the agents said."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from inventory.models import Node
from inventory.services import polling
from tests.ops.servers import ThrowawayRedis

pytestmark = [pytest.mark.lab, pytest.mark.redis, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def dead_cache(lab_portal, settings):
    server = ThrowawayRedis()
    server.start()
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": server.url,
            "OPTIONS": {"IGNORE_EXCEPTIONS": True, "SOCKET_CONNECT_TIMEOUT": 0.5},
        }
    }
    server.stop()
    long_ago = timezone.now() - timedelta(days=3)
    Node.objects.update(last_contact_at=long_ago)
    return long_ago


def test_a_sweep_without_cache_writes_the_contact_times_to_the_rows(dead_cache):
    report = polling.sweep_inline(workers=2)

    assert report.cluster_error == ""
    assert report.agents_ok == 3
    for node in Node.objects.filter(in_cluster=True):
        assert node.last_contact_at > dead_cache, node.name
        assert node.last_contact == node.last_contact_at  # what the pages and the API show
        assert not node.stale


def test_a_single_node_poll_without_cache_writes_its_contact_time(dead_cache):
    node = Node.objects.get(name="node-b")

    stats = polling.poll_node(node.pk)

    assert not stats.agent_failures
    node.refresh_from_db()
    assert node.last_contact_at > dead_cache
    assert Node.objects.get(name="node-a").last_contact_at == dead_cache
