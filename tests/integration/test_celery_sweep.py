"""The dispatcher end to end: a real Celery worker on real Redis runs `sweep`, which polls the
lab's API and fans out one `poll_node` task per node."""

from __future__ import annotations

import json
import os
import time

import pytest
from celery.contrib.testing.worker import start_worker

from inventory import tasks
from inventory.models import Interface, Node
from nicportal.celery import app
from nodeagent import auth

pytestmark = [pytest.mark.lab, pytest.mark.redis, pytest.mark.django_db(transaction=True)]

# The broker this run was given (several runs share one Redis, each with its own database
# number), like tests/preflight.py; the local default otherwise.
_BROKER = os.environ.get("CELERY_BROKER_URL", "")
REDIS = _BROKER if _BROKER.startswith("redis://") else "redis://127.0.0.1:6379/0"


@pytest.fixture
def redis_worker(lab, settings):
    lab.reset()
    settings.KUBECONFIG = str(lab.portal_kubeconfig)
    settings.AGENT_MASTER_KEY = lab.agent_master_key
    settings.CLUSTER_NAME = "lab"
    old = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url = REDIS
    app.conf.task_always_eager = False
    app.conf.broker_transport_options = {}
    with start_worker(
        app,
        pool="threads",
        concurrency=2,
        perform_ping_check=False,
        shutdown_timeout=10,
        loglevel="WARNING",
    ):
        yield lab
    app.conf.broker_url, app.conf.task_always_eager = old


def wait_for(predicate, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_a_worker_on_redis_runs_the_sweep_and_fills_every_node(redis_worker):
    assert app.connection_for_write().as_uri().startswith("redis://")

    tasks.sweep.delay()

    names = {n.name for n in redis_worker.nodes}
    assert wait_for(
        lambda: (
            set(Node.objects.filter(interfaces__isnull=False).values_list("name", flat=True))
            == names
        )
    )
    assert wait_for(
        lambda: Interface.objects.filter(name="eth1", state="free").count() == len(names)
    )


def test_a_hint_from_an_agent_queues_one_refresh_of_its_node(redis_worker, client):
    tasks.sweep.delay()
    assert wait_for(lambda: Interface.objects.filter(node__name="node-a").exists())
    body = json.dumps({"node": "node-a"}).encode()

    def signed() -> dict:
        # As node-a's agent signs each hint: its own key, a fresh nonce every time.
        header, _ = auth.sign_request(
            [redis_worker.agent_key("node-a")],
            direction=auth.AGENT_TO_PORTAL,
            method="POST",
            path="/api/v1/agent-hints/",
            node="node-a",
            body=body,
        )
        return {"HTTP_AUTHORIZATION": header}

    answers = [
        client.post("/api/v1/agent-hints/", body, content_type="application/json", **signed())
        for _ in range(5)
    ]

    assert {a.status_code for a in answers} == {202}
    # a burst: one refresh now, one trailing refresh for the rest, nothing more
    assert [a.json()["queued"] for a in answers] == [True, True, False, False, False]
