"""Acceptance: deployed as documented (web, one Celery worker, one beat; no `manage.py poll`),
the portal becomes ready and exports the sweep metric. Real processes on a throwaway PostgreSQL
and Redis, watching the lab's cluster, with a NAD whose spec.config nests 3,000 deep among the
cluster's NADs: the sweep's lint step must record it as one finding and lint the others."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import pytest
import requests

from tests.ops.servers import (
    VENV_BIN,
    PortalProcess,
    ThrowawayPostgres,
    ThrowawayRedis,
    free_port,
    gunicorn,
    manage,
    portal_env,
    postgres_available,
)
from tests.ops.test_faults import wait_until
from tests.preflight import skip_or_fail

pytestmark = [pytest.mark.lab, pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

DEEP_CONFIG = "[" * 3000 + "]" * 3000
FINDINGS = """
import json
from inventory.models import NetworkAttachment
print(json.dumps({f"{n.namespace}/{n.name}": [f["code"] for f in n.findings]
                  for n in NetworkAttachment.objects.filter(name__startswith="faults-")}))
"""


@pytest.fixture
def deployed(lab, tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    lab.reset()
    lab.create_nad("default", "faults-deep", DEEP_CONFIG)
    lab.create_nad(
        "default",
        "faults-eth0",
        {"cniVersion": "0.3.1", "name": "faults-eth0", "type": "host-device", "device": "eth0"},
    )
    why_not = postgres_available()
    if why_not:
        skip_or_fail(f"no throwaway PostgreSQL: {why_not}")
    postgres, redis_server = ThrowawayPostgres(), ThrowawayRedis()
    processes: list[PortalProcess] = []
    try:
        postgres.start()
        redis_server.start()
        env = portal_env(
            database_url=postgres.url,
            broker_url=redis_server.url,
            cache_url="",  # the broker's server, database 1: the documented default
            var_dir=tmp_path / "var",
            KUBECONFIG=str(lab.kubeconfig),
            NICPORTAL_AGENT_MASTER_KEY=lab.agent_master_key,
            NICPORTAL_CLUSTER_NAME="lab",
            NICPORTAL_AGENT_NAMESPACE="nicportal",
            NICPORTAL_POLL_INTERVAL="2",
        )
        manage(env, "migrate", "--no-input")
        port = free_port()
        celery = str(VENV_BIN / "celery")
        processes = [
            gunicorn(env, port, tmp_path / "web.log", workers=1),
            PortalProcess(
                [celery, "-A", "nicportal", "worker", "--pool", "threads", "--concurrency", "4",
                 "--loglevel", "INFO", "--hostname", f"faults-{port}@%h"],
                env,
                tmp_path / "worker.log",
            ),
            PortalProcess(
                [celery, "-A", "nicportal", "beat", "--loglevel", "INFO",
                 "--schedule", str(tmp_path / "beat-schedule")],
                env,
                tmp_path / "beat.log",
            ),
        ]  # fmt: skip
        for process in processes:
            process.start()
        yield f"http://127.0.0.1:{port}", env
    finally:
        logs = "\n".join(f"--- {p.log_path.name}\n{p.log()[-3000:]}" for p in processes)
        for process in processes:
            process.stop()
        redis_server.stop()
        postgres.destroy()
        lab.reset()
        print(logs)


def _readyz(base: str) -> dict:
    try:
        return requests.get(base + "/readyz", timeout=5).json()
    except (requests.RequestException, ValueError):
        return {}


def test_worker_and_beat_alone_make_the_portal_ready_and_export_the_sweep(deployed):
    base, env = deployed

    wait_until(lambda: _readyz(base).get("checks", {}).get("sweep", {}).get("status") == "ok", 120)
    body = _readyz(base)
    assert body["status"] == "ok", body
    sweep = body["checks"]["sweep"]
    assert sweep["last_ok"] is True
    assert sweep["nodes"] == 3

    metrics = requests.get(base + "/metrics", timeout=10).text
    found = re.search(
        r'^nicportal_last_sweep_timestamp_seconds\{cluster="lab"\} (\S+)$', metrics, re.M
    )
    assert found, metrics
    assert float(found.group(1)) > 0
    assert re.search(r'^nicportal_last_sweep_ok\{cluster="lab"\} 1\.0$', metrics, re.M)

    # The lint step went through the pathological NAD and on to the next one.
    def linted() -> dict:
        output = manage(env, "shell", "-v", "0", "-c", FINDINGS).strip().splitlines()[-1]
        return json.loads(output)

    wait_until(lambda: len(linted()) == 2 and all(linted().values()), 60)
    findings = linted()
    assert findings["default/faults-deep"] == ["CONFIG_TOO_DEEP"]
    assert "CONFIG_TOO_DEEP" not in findings["default/faults-eth0"]
