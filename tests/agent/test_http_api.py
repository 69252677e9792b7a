"""The real agent process over HTTP: signed requests and answers, ETag/304, health, a vanished
namespace."""

from __future__ import annotations

import json
import os
import subprocess
import time

import fastjsonschema
import pytest

from nodeagent import auth
from nodeagent.schema import SNAPSHOT_SCHEMA
from tests.agent.conftest import CLUSTER, MASTER, NODE, NODE_KEY, ip, signed

pytestmark = pytest.mark.netns


@pytest.fixture
def agent(make_netns, start_agent):
    netns = make_netns("http")
    ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1", netns=netns)
    return start_agent("--netns", netns), netns


def test_it_answers_healthz_without_a_signature(agent):
    process, _ = agent
    status, _, body = process.get("/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"


def _bare(headers: dict) -> dict:
    headers.pop("X-Test-Nonce", None)
    return headers


OTHER_KEY = auth.derive_node_key(b"another-master-key-0123456789abcdef", cluster=CLUSTER, node=NODE)


def _other_direction(port: int) -> dict:
    header, _ = auth.sign_request(
        [NODE_KEY],
        direction=auth.AGENT_TO_PORTAL,
        method="GET",
        authority=f"127.0.0.1:{port}",
        path="/v1/snapshot",
        node=NODE,
    )
    return {"Authorization": header}


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (lambda port: {}, "missing"),
        (lambda port: {"Authorization": "Bearer s3cret-agent-token"}, "wrong_scheme"),
        (lambda port: {"Authorization": auth.SCHEME + " node=node-a,ts=1"}, "malformed"),
        (lambda port: _bare(signed(port, key=OTHER_KEY)), "unknown_key"),
        (lambda port: _bare(signed(port, node="node-b")), "wrong_node"),
        (lambda port: _bare(signed(port, now=time.time() - 600)), "clock_skew"),
        (lambda port: _bare(signed(port, now=time.time() + 600)), "clock_skew"),
        (lambda port: _bare(signed(port, path="/v1/snapshot?other")), "bad_signature"),
        (lambda port: _bare(signed(port, authority="10.1.2.3:9550")), "bad_signature"),
        (_other_direction, "bad_signature"),
    ],
    ids=[
        "missing",
        "bearer-token",
        "malformed",
        "another-key",
        "for-another-node",
        "stale",
        "from-the-future",
        "signed-for-another-path",
        "signed-for-another-address",
        "signed-for-the-other-direction",
    ],
)
def test_it_refuses_an_unauthenticated_request_revealing_nothing(agent, headers, reason):
    process, netns = agent
    status, response_headers, body = process.get("/v1/snapshot", headers(process.port))
    assert status == 401
    assert json.loads(body) == {"error": "unauthorized", "reason": reason}
    assert response_headers["WWW-Authenticate"] == auth.SCHEME
    assert "ETag" not in response_headers and auth.SIGNATURE_HEADER not in response_headers
    assert netns.encode() not in body and b"links" not in body
    assert process.log_has(rf"event=unauthorized reason={reason}")


def test_it_refuses_a_replayed_request(agent):
    process, _ = agent
    headers = _bare(signed(process.port))
    assert process.get("/v1/snapshot", headers)[0] == 200
    status, _, body = process.get("/v1/snapshot", headers)
    assert status == 401 and json.loads(body)["reason"] == "replayed"


def test_it_accepts_either_signature_of_a_request_signed_during_a_rotation(agent):
    process, _ = agent
    header, request = auth.sign_request(
        [OTHER_KEY, NODE_KEY],
        direction=auth.PORTAL_TO_AGENT,
        method="GET",
        authority=f"127.0.0.1:{process.port}",
        path="/v1/snapshot",
        node=NODE,
    )
    status, headers, _ = process.get("/v1/snapshot", {"Authorization": header})
    assert status == 200
    assert headers[auth.SIGNATURE_HEADER].startswith(auth.key_id(NODE_KEY) + ":")


def test_it_signs_its_answers_over_the_request_nonce(agent):
    process, _ = agent
    headers = signed(process.port)
    nonce = headers.pop("X-Test-Nonce")
    status, response_headers, body = process.get("/v1/snapshot", headers)
    keys = {auth.key_id(NODE_KEY): NODE_KEY}
    answer = dict(status=status, etag=response_headers["ETag"], body=body)
    signature = response_headers[auth.SIGNATURE_HEADER]
    assert auth.verify_answer(signature, keys, node=NODE, nonce=nonce, **answer)
    # The same answer does not pass for another request or with another body.
    with pytest.raises(auth.AuthError):
        auth.verify_answer(signature, keys, node=NODE, nonce=auth.new_nonce(), **answer)
    with pytest.raises(auth.AuthError):
        auth.verify_answer(
            signature, keys, node=NODE, nonce=nonce, **{**answer, "body": body + b" "}
        )


def test_it_follows_a_new_key_file_without_a_restart(agent, key_file):
    process, _ = agent
    assert process.snapshot()[0] == 200
    key_file.write_text(auth.format_node_key(OTHER_KEY))
    status, _, body = process.get("/v1/snapshot", _bare(signed(process.port)))
    assert status == 401 and json.loads(body)["reason"] == "unknown_key"
    assert process.get("/v1/snapshot", _bare(signed(process.port, key=OTHER_KEY)))[0] == 200


def test_with_the_master_key_it_derives_its_own_node_key(make_netns, start_agent, tmp_path):
    netns = make_netns("master")
    master_file = tmp_path / "master"
    master_file.write_bytes(MASTER + b"\n")
    process = start_agent(
        "--netns", netns, "--master-key-file", str(master_file), "--cluster-name", CLUSTER
    )
    status, _, body = process.snapshot()  # signed with node-a's derived key, answer verified
    assert status == 200 and json.loads(body)["node"] == NODE
    assert process.log_has(rf"event=key_loaded kind=.master key. key_id={auth.key_id(NODE_KEY)}")


def test_a_master_key_for_another_cluster_name_gives_another_key(make_netns, start_agent, tmp_path):
    netns = make_netns("cluster")
    master_file = tmp_path / "master"
    master_file.write_bytes(MASTER)
    process = start_agent(
        "--netns", netns, "--master-key-file", str(master_file), "--cluster-name", "elsewhere"
    )
    status, _, body = process.get("/v1/snapshot", _bare(signed(process.port)))
    assert status == 401 and json.loads(body)["reason"] == "unknown_key"


def test_it_serves_a_schema_valid_snapshot_to_a_signed_request(agent):
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
