"""Acceptance: /readyz turns 503 when PostgreSQL or Redis stops, naming the failing check, and
200 again once it is back. The app runs in its own gunicorn process against a throwaway
PostgreSQL and a throwaway Redis on free ports (the machine's services are never stopped)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from tests.ops.servers import ThrowawayPostgres, ThrowawayRedis, free_port, postgres_available
from tests.preflight import skip_or_fail

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@pytest.fixture
def redis_server() -> Iterator[ThrowawayRedis]:
    server = ThrowawayRedis()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def postgres_server() -> Iterator[ThrowawayPostgres]:
    why_not = postgres_available()
    if why_not:
        skip_or_fail(f"no throwaway PostgreSQL: {why_not}")
    server = ThrowawayPostgres()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def portal(postgres_server, redis_server, tmp_path) -> Iterator[str]:
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.ops.ops_settings",
        "DATABASE_URL": postgres_server.url,
        "CELERY_BROKER_URL": redis_server.url,
        "NICPORTAL_VAR_DIR": str(tmp_path / "var"),
        "NICPORTAL_REDIS_URL": "",
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp_path / "gunicorn.log").open("w")
    process = subprocess.Popen(
        [
            str(GUNICORN),
            "nicportal.wsgi:application",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--timeout",
            "30",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: get(base, "/healthz").status_code == 200)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=15)
        log.close()


def get(base: str, path: str) -> requests.Response:
    try:
        return requests.get(base + path, timeout=10)
    except requests.ConnectionError:
        return _NoAnswer()


class _NoAnswer(requests.Response):
    def __init__(self) -> None:
        super().__init__()
        self.status_code = 0


def wait_until(condition: Callable[[], bool], deadline: float = 30.0) -> None:
    """Waits for a state (a server starting, a pool reconnecting); asserts nothing on timing."""
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError("condition not reached")


def readyz(base: str) -> tuple[int, dict]:
    response = get(base, "/readyz")
    return response.status_code, response.json() if response.status_code else {}


def test_it_turns_unready_while_redis_or_postgres_is_down_and_ready_again_after(
    portal, postgres_server, redis_server
):
    status, body = readyz(portal)
    assert status == 200, body
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["database"]["vendor"] == "postgresql"
    assert body["checks"]["broker"] == {"status": "ok", "transport": "redis"}
    # Unmigrated database and no sweep: reported, but not a reason to leave the Service.
    assert body["checks"]["sweep"]["status"] == "degraded"

    redis_server.stop()
    status, body = readyz(portal)
    assert status == 503
    assert body["status"] == "failed"
    assert body["failed"] == ["broker"]
    assert body["checks"]["broker"]["error"]
    assert get(portal, "/healthz").status_code == 200, "liveness must not depend on Redis"

    redis_server.start()
    status, body = readyz(portal)
    assert status == 200, body
    assert body["failed"] == []

    postgres_server.stop()
    status, body = readyz(portal)
    assert status == 503
    assert body["failed"] == ["database"]
    assert body["checks"]["database"]["status"] == "failed"
    assert get(portal, "/healthz").status_code == 200, "liveness must not depend on PostgreSQL"

    postgres_server.start()
    # The broken persistent connection was dropped by the failed check: the next request
    # reconnects (waiting only covers the server accepting connections).
    wait_until(lambda: readyz(portal)[0] == 200)
    status, body = readyz(portal)
    assert body["checks"]["database"]["status"] == "ok"
    assert body["failed"] == []
