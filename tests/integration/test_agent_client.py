"""AgentClient against a real HTTP server on 127.0.0.1 that plays a node agent, good or bad.

The server is stdlib http.server in a thread; each test sets `server.behaviour` to a function
that answers the request the way the agent under study would (or would not). Like the real agent
it checks the portal's signature and signs its answers with the node's key (nodeagent.auth)
unless a test says otherwise.
"""

from __future__ import annotations

import copy
import http.server
import json
import socket
import threading
from collections.abc import Callable, Iterator

import fastjsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.clients.agents import AgentClient, AgentKeyring, SnapshotResult
from nodeagent import auth
from nodeagent.schema import SNAPSHOT_SCHEMA
from tests.preflight import skip_or_fail

MASTER = b"agent-client-tests-master-0123456789"
CLUSTER = "client-tests"
KEYRING = AgentKeyring([MASTER], cluster=CLUSTER)
ETAG = '"snap-1"'

LINK = {
    "ifindex": 2,
    "name": "eth1",
    "altnames": ["enp59s0f1"],
    "alias": None,
    "mac": "02:00:00:00:00:01",
    "permanent_mac": None,
    "kind": "physical",
    "master": None,
    "master_kind": None,
    "operstate": "up",
    "carrier": True,
    "mtu": 1500,
    "speed_mbps": 25000,
    "driver": "ice",
    "pci_address": "0000:3b:00.1",
    "vendor_id": "0x8086",
    "device_id": "0x159b",
    "numa_node": 0,
    "sriov_total_vfs": 8,
    "sriov_num_vfs": 0,
    "pf_pci_address": None,
    "pf_name": None,
    "wireless": False,
    "addresses": [{"family": 4, "address": "10.0.0.11", "prefixlen": 24, "scope": "global"}],
    "default_route_v4": False,
    "default_route_v6": False,
}
SNAPSHOT = {
    "schema_version": 1,
    "node": "node-a",
    "agent_version": "0.1.0",
    "collected_at": "2025-01-31T12:00:00.123456Z",
    "netns": None,
    "links": [LINK],
    "pci_functions": [
        {
            "pci_address": "0000:3b:00.1",
            "driver": "ice",
            "vendor_id": "0x8086",
            "device_id": "0x159b",
            "numa_node": 0,
            "sriov_total_vfs": 8,
            "sriov_num_vfs": 0,
            "pf_pci_address": None,
        }
    ],
    "cni": {
        "bin_dirs": [
            {
                "path": "/opt/cni/bin",
                "host_device": True,
                "host_device_version": "1.1.1",
                "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
            }
        ],
        "host_device": {
            "path": "/opt/cni/bin/host-device",
            "version": "1.1.1",
            "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
        },
    },
}


def snapshot(**changes) -> dict:
    document = copy.deepcopy(SNAPSHOT)
    document.update(changes)
    return document


class AgentServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        self.behaviour: Callable[[http.server.BaseHTTPRequestHandler], None] = answer_json(SNAPSHOT)
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.release = threading.Event()  # lets hanging handlers go at teardown
        self.handled = threading.Event()
        self.bytes_sent = 0
        self.write_failed = False
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                server.requests.append((self.path, dict(self.headers)))
                try:
                    server.behaviour(self)
                except OSError:  # the client hung up on us: that is what some tests want
                    server.write_failed = True
                finally:
                    server.handled.set()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


def node_key(node: str, master: bytes = MASTER) -> bytes:
    return auth.derive_node_key(master, cluster=CLUSTER, node=node)


def send(
    handler,
    status: int,
    body: bytes = b"",
    headers: dict | None = None,
    *,
    sign: bool = True,
    key: bytes | None = None,
    nonce: str | None = None,
) -> None:
    """Answer; signed like the real agent signs (over the request's nonce) unless sign=False."""
    headers = dict(headers or {})
    if sign:
        try:
            request = auth.parse_authorization(handler.headers.get("Authorization"))
        except auth.AuthError:
            request = None
        if request is not None:
            headers[auth.SIGNATURE_HEADER] = auth.sign_answer(
                key or node_key(request.node),
                node=request.node,
                nonce=nonce or request.nonce,
                status=status,
                etag=headers.get("ETag", ""),
                body=body,
            )
    handler.send_response(status)
    for name, value in headers.items():
        handler.send_header(name, value)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)


def refused(handler, master: bytes = MASTER) -> bool:
    """Check the portal's signature as the agent does; answer 401 with the reason if it fails."""
    try:
        request = auth.parse_authorization(handler.headers.get("Authorization"))
        key = node_key(request.node, master)
        auth.verify_request(
            request,
            {auth.key_id(key): key},
            direction=auth.PORTAL_TO_AGENT,
            method="GET",
            authority=auth.authority(*handler.connection.getsockname()[:2]),
            path=handler.path,
        )
    except auth.AuthError as error:
        refusal = json.dumps({"error": "unauthorized", "reason": error.code}).encode()
        send(handler, 401, refusal, sign=False)
        return True
    return False


def answer_json(document, *, etag: str = ETAG) -> Callable:
    body = json.dumps(document, ensure_ascii=False).encode()

    def behaviour(handler):
        if refused(handler):
            return
        if handler.headers.get("If-None-Match") == etag:
            send(handler, 304, headers={"ETag": etag})
        else:
            send(handler, 200, body, {"ETag": etag, "Content-Type": "application/json"})

    return behaviour


@pytest.fixture(scope="module")
def server_for_module() -> Iterator[AgentServer]:
    server = AgentServer()
    yield server
    server.stop()


@pytest.fixture
def agent(server_for_module: AgentServer) -> AgentServer:
    server = server_for_module
    server.behaviour = answer_json(SNAPSHOT)
    server.requests.clear()
    server.handled.clear()
    server.bytes_sent, server.write_failed = 0, False
    return server


@pytest.fixture
def client() -> Iterator[AgentClient]:
    agent_client = AgentClient(keyring=KEYRING, timeout=2.0)
    yield agent_client
    agent_client.close()


def test_the_fixture_snapshot_is_valid_for_the_agents_schema():
    fastjsonschema.compile(SNAPSHOT_SCHEMA)(copy.deepcopy(SNAPSHOT))


def test_it_fetches_and_validates_a_signed_snapshot_with_a_signed_request(agent, client):
    result = client.fetch(agent.url, node="node-a")

    assert result.status == "ok", result.error
    assert result.snapshot == SNAPSHOT
    assert result.etag == ETAG
    assert result.error == ""
    assert result.elapsed >= 0
    ((path, headers),) = agent.requests
    assert path == "/v1/snapshot"
    request = auth.parse_authorization(headers["Authorization"])
    assert request.node == "node-a"
    assert [kid for kid, _ in request.signatures] == [auth.key_id(node_key("node-a"))]
    # No key material travels: neither the master nor the node's key.
    for secret in (MASTER.decode(), node_key("node-a").hex()):
        assert all(secret not in value for value in headers.values())
    assert "If-None-Match" not in headers


def test_every_request_has_a_fresh_nonce(agent, client):
    for _ in range(3):
        assert client.fetch(agent.url, node="node-a").status == "ok"
    nonces = {auth.parse_authorization(h["Authorization"]).nonce for _, h in agent.requests}
    assert len(nonces) == 3


def test_during_a_rotation_it_signs_with_both_masters_and_accepts_either(agent):
    new_master = b"agent-client-tests-new-master-0123456"
    rotating = AgentClient(keyring=AgentKeyring([new_master, MASTER], cluster=CLUSTER))
    result = rotating.fetch(agent.url, node="node-a")  # the agent still holds the old key
    assert result.status == "ok", result.error
    request = auth.parse_authorization(agent.requests[0][1]["Authorization"])
    assert [kid for kid, _ in request.signatures] == [
        auth.key_id(node_key("node-a", new_master)),
        auth.key_id(node_key("node-a")),
    ]


@pytest.mark.parametrize(
    ("answer", "code"),
    [
        ({"sign": False}, "unsigned"),
        ({"key": node_key("node-b")}, "unknown_key"),
        ({"key": node_key("node-a", b"an-impostor-master-0123456789abcdef")}, "unknown_key"),
        ({"nonce": "0" * 32}, "bad_signature"),
    ],
    ids=["unsigned", "another-nodes-key", "another-master", "an-old-answer-replayed"],
)
def test_it_refuses_an_answer_not_signed_for_this_request_and_shows_none_of_it(
    agent, client, answer, code
):
    hostile = json.dumps(snapshot(links=[{**LINK, "alias": "<forged>"}])).encode()
    agent.behaviour = lambda handler: send(handler, 200, hostile, {"ETag": ETAG}, **answer)
    result = client.fetch(agent.url, node="node-a")
    assert (result.status, result.snapshot) == ("error", None)
    assert result.error == f"HTTP 200 not signed with node node-a's key ({code}): ignored"


def test_an_unsigned_304_does_not_pass_for_an_unchanged_node(agent, client):
    agent.behaviour = lambda handler: send(handler, 304, headers={"ETag": ETAG}, sign=False)
    result = client.fetch(agent.url, node="node-a", etag=ETAG)
    assert result.status == "error"
    assert result.error == "HTTP 304 not signed with node node-a's key (unsigned): ignored"


def test_an_unsigned_error_answer_is_not_echoed(agent, client):
    body = b'{"error": "<script>steal()</script>"}'
    agent.behaviour = lambda handler: send(handler, 503, body, sign=False)
    result = client.fetch(agent.url, node="node-a")
    assert result.error == "HTTP 503 not signed with node node-a's key (unsigned): ignored"


@pytest.mark.parametrize(
    ("reason", "explanation"),
    [
        ("clock_skew", "the clocks of portal and node differ by more than 120 s"),
        ("wrong_node", "the agent at this address serves another node"),
        ("<script>alert(1)</script>", "no reason given"),
        (None, "no reason given"),
    ],
)
def test_a_refusal_is_explained_in_fixed_words_only(agent, client, reason, explanation):
    body = json.dumps({"error": "unauthorized", "reason": reason}).encode()
    agent.behaviour = lambda handler: send(handler, 401, body, sign=False)
    result = client.fetch(agent.url, node="node-a")
    assert result.error == f"HTTP 401 (the agent refused our signature: {explanation})"


def test_without_a_master_key_it_sends_nothing(agent):
    keyless = AgentClient(keyring=AgentKeyring([], cluster=CLUSTER))
    result = keyless.fetch(agent.url, node="node-a")
    assert result.error.startswith("NICPORTAL_AGENT_MASTER_KEY is not set")
    assert agent.requests == []


def test_it_accepts_a_trailing_slash_on_the_agent_url(agent, client):
    assert client.fetch(agent.url + "/", node="node-a").status == "ok"
    assert agent.requests[0][0] == "/v1/snapshot"


def test_it_asks_conditionally_and_reports_not_modified(agent, client):
    result = client.fetch(agent.url, node="node-a", etag=ETAG)

    assert result == SnapshotResult("not_modified", None, ETAG, "", result.elapsed)
    assert agent.requests[0][1]["If-None-Match"] == ETAG


def test_it_gets_the_full_snapshot_when_the_etag_changed(agent, client):
    result = client.fetch(agent.url, node="node-a", etag='"old"')
    assert (result.status, result.etag) == ("ok", ETAG)


def test_it_reports_a_key_the_agent_does_not_hold(agent):
    wrong = AgentClient(keyring=AgentKeyring([b"not-the-master-0123456789abcdef"], cluster=CLUSTER))
    result = wrong.fetch(agent.url, node="node-a")
    assert (result.status, result.snapshot) == ("error", None)
    assert result.error == (
        "HTTP 401 (the agent refused our signature: it holds another key: check "
        "NICPORTAL_AGENT_MASTER_KEY, the cluster name and the agent's key file)"
    )


def test_it_reports_a_timeout_when_the_agent_does_not_answer(agent):
    agent.behaviour = lambda handler: agent.release.wait(30)
    slow = AgentClient(keyring=KEYRING, timeout=0.3)

    result = slow.fetch(agent.url, node="node-a")

    assert (result.status, result.error) == ("error", "timeout after 0.3s")


def test_it_rejects_a_10_mb_body_by_its_length_without_reading_it(agent, client):
    total = 10 * 1024 * 1024

    def huge(handler):
        # A small send buffer so the kernel cannot swallow the body for a client that stopped.
        handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 1024)
        handler.send_response(200)
        handler.send_header("Content-Length", str(total))
        handler.end_headers()
        chunk = b" " * 65536
        while agent.bytes_sent < total:
            handler.wfile.write(chunk)
            agent.bytes_sent += len(chunk)

    agent.behaviour = huge
    result = client.fetch(agent.url, node="node-a")

    assert result.status == "error"
    assert result.error == f"body exceeds {4 * 1024 * 1024} bytes (Content-Length {total})"
    assert agent.handled.wait(10)
    assert agent.write_failed  # the client hung up instead of reading 10 MB
    assert agent.bytes_sent < total


def test_it_stops_reading_a_body_without_length_past_max_bytes(agent, client):
    endless = 64 * 1024 * 1024

    def streaming(handler):
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.end_headers()  # HTTP/1.0, no Content-Length: the body ends when we close
        handler.wfile.write(b'{"links": [')
        chunk = b'"x",' * 16384
        while agent.bytes_sent < endless:
            handler.wfile.write(chunk)
            agent.bytes_sent += len(chunk)

    agent.behaviour = streaming
    result = client.fetch(agent.url, node="node-a")

    assert (result.status, result.error) == ("error", f"body exceeds {4 * 1024 * 1024} bytes")
    assert agent.handled.wait(10)
    assert agent.write_failed
    assert agent.bytes_sent < endless


def test_it_reports_a_body_that_is_not_json(agent, client):
    agent.behaviour = lambda handler: send(handler, 200, b"<html>Welcome to nginx</html>")
    result = client.fetch(agent.url, node="node-a")
    assert result.status == "error"
    assert result.error == (
        "snapshot refused: Not valid JSON: Expecting value: line 1 column 1 (char 0)."
    )


def test_it_reports_a_body_that_is_not_utf8(agent, client):
    agent.behaviour = lambda handler: send(handler, 200, b'{"node": "\xff\xfe"}')
    result = client.fetch(agent.url, node="node-a")
    assert result.error.startswith("snapshot refused: Not valid JSON: ")


def test_it_reports_the_schema_violation_with_its_path(agent, client):
    bad_link = {**LINK, "mtu": "1500"}
    agent.behaviour = answer_json(snapshot(links=[LINK, bad_link]))

    result = client.fetch(agent.url, node="node-a")

    assert result.status == "error"
    assert result.snapshot is None
    assert result.error.startswith("schema: data.links[1].mtu ")


def test_it_reports_a_json_answer_that_is_not_an_object(agent, client):
    agent.behaviour = answer_json([SNAPSHOT])
    result = client.fetch(agent.url, node="node-a")
    assert result.error == "schema: data must be object, got list"


def test_it_reports_an_agent_speaking_another_schema_version(agent, client):
    agent.behaviour = answer_json(snapshot(schema_version=2))
    result = client.fetch(agent.url, node="node-a")
    assert result.error.startswith("schema_version 2 is not supported (this portal reads 1")


def test_it_rejects_an_answer_for_another_node(agent, client):
    agent.behaviour = answer_json(snapshot(node="node-b"))
    result = client.fetch(agent.url, node="node-a")
    assert (result.status, result.error) == ("error", "answer is for node node-b, expected node-a")


def test_it_passes_html_in_names_and_aliases_through_untouched(agent, client):
    # Escaping is the template's job; here the facts must stay exactly what the node said.
    hostile = "<script>alert(1)</script>&amp;"
    link = {**LINK, "name": "eth<b>1", "alias": hostile, "altnames": ['x"><img src=y>']}
    agent.behaviour = answer_json(snapshot(links=[link]))

    result = client.fetch(agent.url, node="node-a")

    assert result.status == "ok", result.error
    (got,) = result.snapshot["links"]
    assert (got["name"], got["alias"], got["altnames"]) == ("eth<b>1", hostile, ['x"><img src=y>'])


def test_it_reports_an_agent_error_status_with_the_start_of_its_body(agent, client):
    body = b'{"error": "netlink_failed", "detail": "' + b"x" * 1000 + b'"}'
    agent.behaviour = lambda handler: send(handler, 503, body, {"Retry-After": "5"})
    result = client.fetch(agent.url, node="node-a")
    assert result.status == "error"
    assert result.error.startswith('HTTP 503: \'{"error": "netlink_failed"')
    assert len(result.error) < 300


def test_it_reports_connection_refused(client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = client.fetch(f"http://127.0.0.1:{port}", node="node-a")
    assert (result.status, result.snapshot, result.error) == ("error", None, "connection refused")


def test_it_reports_a_bad_agent_url(client):
    result = client.fetch("http://", node="node-a")
    assert result.status == "error"
    assert result.error.startswith("bad agent URL")


def test_it_reports_a_connection_closed_without_an_answer(agent, client):
    agent.behaviour = lambda handler: handler.connection.shutdown(socket.SHUT_RDWR)
    result = client.fetch(agent.url, node="node-a")
    assert result.status == "error"
    assert result.error.startswith("connection broken: ")


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    body=st.one_of(
        st.binary(max_size=300),
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(st.text(max_size=8), children, max_size=4)
            ),
            max_leaves=20,
        ).map(lambda value: json.dumps(value).encode()),
        st.builds(
            lambda key, value: json.dumps(snapshot(**{key: value})).encode(),
            st.sampled_from(sorted(SNAPSHOT)),
            st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers(), max_size=2),
        ),
    ),
    status=st.sampled_from([200, 200, 200, 204, 302, 304, 404, 500]),
)
def test_malformed_answers_never_raise_out_of_fetch(agent, client, body, status):
    agent.behaviour = lambda handler: send(handler, status, body)
    result = client.fetch(agent.url, node="node-a")
    assert result.status in {"ok", "not_modified", "error"}
    assert (result.status == "error") == bool(result.error)
    if result.status == "ok":
        fastjsonschema.compile(SNAPSHOT_SCHEMA)(result.snapshot)


def test_it_gives_up_on_an_agent_that_drips_its_body_past_the_deadline(agent):
    def dripping(handler):
        handler.send_response(200)
        handler.end_headers()
        # Each byte comes well within the read timeout; only the overall deadline can stop this.
        while not agent.release.wait(0.05):
            handler.wfile.write(b" ")
            handler.wfile.flush()

    agent.behaviour = dripping
    slow = AgentClient(keyring=KEYRING, timeout=0.3)

    result = slow.fetch(agent.url, node="node-a")

    assert (result.status, result.error) == ("error", "timeout after 0.3s (body still arriving)")


# --- contract with the real node agent -----------------------------------------------------------


@pytest.fixture
def real_agent(tmp_path) -> Iterator[str]:
    """`python -m nodeagent` reading a fresh, empty network namespace of our own."""
    import os
    import re
    import subprocess
    import sys
    import uuid

    if os.geteuid() != 0 or subprocess.run(["ip", "netns", "list"], check=False).returncode:
        skip_or_fail("needs root and ip netns")
    netns = f"nptest-agc-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", netns], check=True)
    key_file = tmp_path / "node-x.key"
    key_file.write_text(auth.format_node_key(node_key("node-x")) + "\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "nodeagent", "--listen", "127.0.0.1:0", "--key-file",
         str(key_file), "--node-name", "node-x", "--netns", netns, "--no-pci-scan"],
        stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        port = None
        for line in process.stderr:  # the agent logs its port once it listens
            if match := re.search(r"event=listening .*port=(\d+)", line):
                port = match.group(1)
                break
        assert port, "the agent did not start"
        threading.Thread(target=process.stderr.read, daemon=True).start()  # keep the pipe drained
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        subprocess.run(["ip", "netns", "del", netns], check=False)


@pytest.mark.netns
def test_it_reads_the_real_agent_and_its_etag_round_trips(real_agent, client):
    first = client.fetch(real_agent, node="node-x")
    assert first.status == "ok", first.error
    assert first.snapshot["node"] == "node-x"
    assert [link["name"] for link in first.snapshot["links"]] == ["lo"]
    assert first.etag

    second = client.fetch(real_agent, node="node-x", etag=first.etag)
    assert (second.status, second.etag, second.snapshot) == ("not_modified", first.etag, None)

    # Asked for another node, the real agent refuses to answer at all.
    wrong = client.fetch(real_agent, node="node-y")
    assert wrong.error == (
        "HTTP 401 (the agent refused our signature: the agent at this address serves another node)"
    )


def test_an_answer_for_another_node_is_refused_even_when_signed(agent, client):
    agent.behaviour = answer_json(snapshot(node="node-b"))
    result = client.fetch(agent.url, node="node-a")
    assert (result.status, result.error) == ("error", "answer is for node node-b, expected node-a")


def test_it_builds_itself_from_the_settings(settings):
    settings.AGENT_MASTER_KEY = "from-settings-master-0123456789abcdef"
    settings.AGENT_MASTER_KEY_PREVIOUS = "from-settings-previous-0123456789abc"
    settings.CLUSTER_NAME = "prod"
    settings.AGENT_TIMEOUT = 1.5
    settings.AGENT_MAX_BYTES = 2048
    client = AgentClient.from_settings()
    assert (client.timeout, client.max_bytes) == (1.5, 2048)
    assert client.keyring.masters == [
        b"from-settings-master-0123456789abcdef",
        b"from-settings-previous-0123456789abc",
    ]
    assert client.keyring.cluster == "prod"


def test_it_refuses_a_snapshot_nested_deeper_than_its_limit_naming_it(agent, client):
    deep = b'{"node": "node-a", "links": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    agent.behaviour = lambda handler: send(handler, 200, deep)
    result = client.fetch(agent.url, node="node-a")
    assert (result.status, result.error) == (
        "error",
        "snapshot refused: The JSON document is nested deeper than the limit of 16 levels.",
    )


@pytest.mark.parametrize(
    ("alias", "accepted"),
    [("\u0000", False), ("\ud800", False), ("\u0007 bell", True), ("caf\u00e9", True)],
)
def test_it_refuses_a_snapshot_with_text_no_database_can_store(agent, client, alias, accepted):
    # NUL and lone surrogates cannot be stored; other control characters are the node's facts.
    body = json.dumps(snapshot(links=[{**LINK, "alias": alias}])).encode()
    agent.behaviour = lambda handler: send(handler, 200, body, {"ETag": ETAG})
    result = client.fetch(agent.url, node="node-a")
    if accepted:
        assert result.status == "ok", result.error
        assert result.snapshot["links"][0]["alias"] == alias
    else:
        assert result.status == "error"
        assert result.error.startswith("snapshot refused at links[0].alias: ")


@pytest.mark.parametrize(
    ("where", "value", "path"),
    [
        ("function", "1", "data.pci_functions[0].vf_index"),
        ("function", -1, "data.pci_functions[0].vf_index"),
        ("function", 10**12, "data.pci_functions[0].vf_index"),
        ("link", 1.5, "data.links[0].vf_index"),
    ],
)
def test_it_refuses_a_vf_index_that_is_no_vf_number_naming_it(agent, client, where, value, path):
    document = snapshot()
    entry = document["pci_functions"][0] if where == "function" else document["links"][0]
    entry["vf_index"] = value
    agent.behaviour = answer_json(document)

    result = client.fetch(agent.url, node="node-a")

    assert (result.status, result.snapshot) == ("error", None)
    assert result.error.startswith(f"schema: {path} ")


def test_it_refuses_a_pf_name_that_is_not_text(agent, client):
    document = snapshot()
    document["pci_functions"][0]["pf_name"] = ["ens3f0"]
    agent.behaviour = answer_json(document)

    result = client.fetch(agent.url, node="node-a")

    assert result.error.startswith("schema: data.pci_functions[0].pf_name ")
