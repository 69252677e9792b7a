"""The real agent process over HTTP: token, ETag/304, health, a vanished namespace."""

from __future__ import annotations

import json
import os
import subprocess

import fastjsonschema
import pytest

from nodeagent.schema import SNAPSHOT_SCHEMA
from tests.agent.conftest import ip

pytestmark = pytest.mark.netns

UNAUTHORIZED = {"error": "unauthorized"}


@pytest.fixture
def agent(make_netns, start_agent):
    netns = make_netns("http")
    ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1", netns=netns)
    return start_agent("--netns", netns), netns


def test_it_answers_healthz_without_a_token(agent):
    process, _ = agent
    status, _, body = process.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token"}, {"Authorization": "s3cret-agent-token"}],
    ids=["missing", "wrong", "not-bearer"],
)
def test_it_rejects_a_missing_or_wrong_token_revealing_nothing(agent, headers):
    process, netns = agent
    status, response_headers, body = process.get("/v1/snapshot", headers)
    assert status == 401
    assert json.loads(body) == UNAUTHORIZED
    assert "ETag" not in response_headers
    assert netns.encode() not in body and b"node-a" not in body


def test_it_serves_a_schema_valid_snapshot_with_the_token(agent):
    process, _ = agent
    status, headers, body = process.snapshot()
    assert status == 200 and headers["Content-Type"] == "application/json"
    fastjsonschema.compile(SNAPSHOT_SCHEMA)(json.loads(body))


def test_it_keeps_the_etag_of_an_unchanged_node_and_answers_304(agent):
    process, _ = agent
    _, first_headers, first_body = process.snapshot()
    _, second_headers, second_body = process.snapshot()
    etag = first_headers["ETag"]
    assert second_headers["ETag"] == etag
    # collected_at moves on, the ETag does not: it covers the facts only.
    assert json.loads(first_body)["collected_at"] != json.loads(second_body)["collected_at"]
    status, headers, body = process.snapshot({"If-None-Match": etag})
    assert status == 304 and body == b"" and headers["ETag"] == etag


def test_it_changes_the_etag_when_a_link_changes(agent):
    process, netns = agent
    ip("link", "set", "eth0", "up", netns=netns)
    _, headers, _ = process.snapshot()
    # On an UP link the kernel announces an alias change (on a down link it does not; the
    # periodic full re-read covers that case).
    ip("link", "set", "eth0", "alias", "renamed-by-host-device", netns=netns)
    status, new_headers, body = process.snapshot({"If-None-Match": headers["ETag"]})
    assert status == 200 and new_headers["ETag"] != headers["ETag"]
    links = {link["name"]: link for link in json.loads(body)["links"]}
    assert links["eth0"]["alias"] == "renamed-by-host-device"


def test_it_answers_503_when_the_namespace_vanishes_and_keeps_running(agent):
    process, netns = agent
    assert process.snapshot()[0] == 200
    subprocess.run(["ip", "netns", "del", netns], check=True)
    status, _, body = process.snapshot()
    assert status == 503
    error = json.loads(body)
    assert error["error"] == "netns_missing" and netns in error["detail"]
    assert process.log_has(rf"event=netns_vanished netns={netns}")
    assert process.proc.poll() is None
    assert process.get("/healthz")[0] == 200
    # The agent let go of the namespace: its worker (which pinned it) is gone.
    assert process.log_has("event=snapshot_failed reason=netns_missing")
    assert not os.path.exists(f"/run/netns/{netns}")


def test_it_follows_a_namespace_recreated_under_the_same_name(agent):
    process, netns = agent
    subprocess.run(["ip", "netns", "del", netns], check=True)
    assert process.snapshot()[0] == 503
    ip("netns", "add", netns)
    ip("link", "add", "fresh0", "type", "veth", "peer", "name", "fresh1", netns=netns)
    status, _, body = process.snapshot()
    assert status == 200
    assert "fresh0" in {link["name"] for link in json.loads(body)["links"]}


def test_it_refuses_to_start_on_a_missing_namespace_and_never_creates_it(start_agent):
    name = "nptest-agent-absent-0000"
    process = start_agent("--netns", name, wait=False)
    assert process.proc.wait(timeout=30) == 1
    assert process.log_has(rf"event=netns_missing .*{name}")
    assert not os.path.exists(f"/run/netns/{name}")


def test_it_answers_404_and_405_outside_its_api(agent):
    process, _ = agent
    assert process.get("/v1/nothing")[0] == 404
