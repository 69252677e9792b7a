"""AgentClient's connections (libcurl through pycurl) against real servers on 127.0.0.1:
keep-alive and what an agent may do to a kept-alive connection, a handle per concurrent fetch,
limits and deadlines on error answers, redirects, URL schemes, proxies from the environment,
and TLS verification.

The agent here speaks HTTP/1.1 (keeps the connection open) like the real one; the answers are
signed as the real agent signs them (tests/integration/test_agent_client.py's helpers).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from django.core.management import call_command

from inventory.clients.agents import AgentClient
from nodeagent import auth
from tests.integration.test_agent_client import (
    ETAG,
    KEYRING,
    SNAPSHOT,
    AgentServer,
    answer_json,
    node_key,
    send,
)


class KeepAliveAgent(AgentServer):
    """The test agent over HTTP/1.1: it keeps each connection open until told otherwise, and
    counts the connections it accepted and saw closed."""

    def __init__(self, *, tls: ssl.SSLContext | None = None) -> None:
        self.connections: list[tuple[str, int]] = []
        self.closed = threading.Semaphore(0)
        # After answering, close the connection without saying so (no Connection: close).
        self.hang_up_after_answer = False
        super().__init__()
        self.RequestHandlerClass.protocol_version = "HTTP/1.1"
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)

    def process_request_thread(self, request, client_address):
        self.connections.append(client_address)
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.closed.release()

    @property
    def url(self) -> str:
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://127.0.0.1:{self.server_address[1]}"


def hanging_up(behaviour):
    def answer(handler):
        behaviour(handler)
        handler.wfile.flush()
        handler.connection.shutdown(socket.SHUT_RDWR)
        handler.close_connection = True

    return answer


@pytest.fixture
def agent() -> Iterator[KeepAliveAgent]:
    server = KeepAliveAgent()
    yield server
    server.stop()


@pytest.fixture
def client() -> Iterator[AgentClient]:
    agent_client = AgentClient(keyring=KEYRING, timeout=2.0)
    yield agent_client
    agent_client.close()


def test_a_threads_requests_to_one_agent_share_one_kept_alive_connection(agent, client):
    for _ in range(3):
        assert client.fetch(agent.url, node="node-a", etag=ETAG).status == "not_modified"
    assert client.fetch(agent.url, node="node-a").status == "ok"
    assert len(agent.requests) == 4
    assert len(agent.connections) == 1


def test_it_opens_a_new_connection_when_the_agent_closed_the_idle_one(agent, client):
    agent.behaviour = hanging_up(answer_json(SNAPSHOT))
    first = client.fetch(agent.url, node="node-a")
    assert first.status == "ok", first.error
    assert agent.closed.acquire(timeout=5)  # the agent's side of the connection is gone

    second = client.fetch(agent.url, node="node-a", etag=ETAG)

    assert second.status == "not_modified", second.error
    assert len(agent.connections) == 2
    nonces = {auth.parse_authorization(h["Authorization"]).nonce for _, h in agent.requests}
    assert len(nonces) == 2  # a new request, not the old one replayed


def test_an_agent_gone_between_two_requests_is_connection_refused(agent, client):
    agent.behaviour = hanging_up(answer_json(SNAPSHOT))
    assert client.fetch(agent.url, node="node-a").status == "ok"
    assert agent.closed.acquire(timeout=5)
    url = agent.url
    agent.stop()  # and nothing listens at its address any more

    result = client.fetch(url, node="node-a", etag=ETAG)

    assert (result.status, result.error) == ("error", "connection refused")


def test_a_refused_answer_does_not_spoil_the_next_request_on_the_connection(agent, client):
    forged = json.dumps({**SNAPSHOT, "agent_version": "forged"}).encode()
    agent.behaviour = lambda handler: send(handler, 200, forged, {"ETag": ETAG}, sign=False)
    refused = client.fetch(agent.url, node="node-a")
    assert refused.error == "HTTP 200 not signed with node node-a's key (unsigned): ignored"

    agent.behaviour = answer_json(SNAPSHOT)
    result = client.fetch(agent.url, node="node-a")

    assert result.status == "ok", result.error
    assert result.snapshot == SNAPSHOT


def test_each_thread_fetches_on_its_own_connection_and_every_answer_is_its_own(agent, client):
    names = [f"node-{index}" for index in range(40)]

    def behaviour(handler):
        node = auth.parse_authorization(handler.headers["Authorization"]).node
        answer_json({**SNAPSHOT, "node": node})(handler)

    agent.behaviour = behaviour
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda name: client.fetch(agent.url, node=name), names))

    assert [result.error for result in results] == [""] * len(names)
    assert [result.snapshot["node"] for result in results] == names
    assert 1 <= len(agent.connections) <= 4


def test_a_client_keeps_its_connections_from_one_thread_pool_to_the_next(agent, client):
    # A sweep's threads end with the sweep; the next sweep's threads reuse the connections.
    for _ in range(3):
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: client.fetch(agent.url, node="node-a"), range(20)))
        assert {result.status for result in results} == {"ok"}
    assert len(agent.requests) == 60
    assert 1 <= len(agent.connections) <= 4


def test_an_etag_with_a_line_break_is_never_sent(agent, client):
    result = client.fetch(agent.url, node="node-a", etag='"x"\r\nX-Injected: 1')
    assert result.error == "request failed: a header value holds a line break or NUL"
    assert agent.requests == []


def test_a_forked_client_uses_connections_of_its_own(agent, client):
    assert client.fetch(agent.url, node="node-a").status == "ok"
    clone = client.forked()
    try:
        assert clone.fetch(agent.url, node="node-a").status == "ok"
    finally:
        clone.close()
    assert len(agent.connections) == 2


def test_close_hangs_up_the_kept_connections(agent, client):
    assert client.fetch(agent.url, node="node-a").status == "ok"
    assert not agent.closed.acquire(timeout=0.2)  # kept alive
    client.close()
    assert agent.closed.acquire(timeout=5)
    assert client.fetch(agent.url, node="node-a").status == "ok"  # usable again after close


def test_an_error_answer_past_64_kib_is_cut_off(agent, client):
    total = 10 * 1024 * 1024

    def huge_error(handler):
        handler.send_response(503)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        chunk = b"x" * 65536
        while agent.bytes_sent < total:
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            agent.bytes_sent += len(chunk)

    agent.behaviour = huge_error
    result = client.fetch(agent.url, node="node-a")

    assert (result.status, result.error) == ("error", "body exceeds 65536 bytes")
    assert agent.handled.wait(10)
    assert agent.bytes_sent < total


def test_a_refusal_with_a_huge_body_is_still_explained(agent, client):
    def refusal(handler):
        handler.send_response(401)
        handler.send_header("Content-Length", str(10 * 1024 * 1024))
        handler.end_headers()
        handler.wfile.write(b'{"reason": "replayed"}' + b" " * (1024 * 1024))

    agent.behaviour = refusal
    result = client.fetch(agent.url, node="node-a")
    # The reason code is in the first 200 bytes: the other 10 MB are never waited for.
    assert (
        result.error == "HTTP 401 (the agent refused our signature: it had seen our nonce already)"
    )


def test_an_answer_whose_head_never_ends_hits_the_deadline(agent):
    def stalling(handler):
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
        handler.wfile.flush()
        agent.release.wait(30)

    agent.behaviour = stalling
    slow = AgentClient(keyring=KEYRING, timeout=0.3)
    try:
        result = slow.fetch(agent.url, node="node-a")
    finally:
        slow.close()
    assert (result.status, result.error) == ("error", "timeout after 0.3s")


def test_a_redirect_is_an_answer_not_followed(agent, client):
    agent.behaviour = lambda handler: send(handler, 302, b"", {"Location": "/elsewhere"})
    result = client.fetch(agent.url, node="node-a")
    assert (result.status, result.error) == ("error", "HTTP 302")
    assert [path for path, _ in agent.requests] == ["/v1/snapshot"]


@pytest.mark.parametrize(
    ("url", "error"),
    [
        ("ftp://127.0.0.1/x", "bad agent URL: Not supported URL scheme ftp"),
        ("file:///etc/passwd", "bad agent URL: no host in 'file:///etc/passwd/v1/snapshot'"),
        ("gopher://127.0.0.1:70", "bad agent URL: Not supported URL scheme gopher"),
    ],
)
def test_it_speaks_only_http_and_https(client, url, error):
    assert client.fetch(url, node="node-a").error == error


def test_a_proxy_in_the_environment_never_sees_the_request(agent, client, monkeypatch):
    proxy = KeepAliveAgent()
    try:
        for name in ("http_proxy", "HTTP_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(name, proxy.url)
        monkeypatch.delenv("no_proxy", raising=False)
        monkeypatch.delenv("NO_PROXY", raising=False)
        result = client.fetch(agent.url, node="node-a")
    finally:
        proxy.stop()
    assert result.status == "ok", result.error
    assert proxy.requests == []
    assert len(agent.requests) == 1


# --- TLS -----------------------------------------------------------------------------------------


@pytest.fixture
def tls_files(tmp_path) -> Path:
    out = tmp_path / "tls"
    call_command("webhookcert", "--out", str(out), "--ip", "127.0.0.1", "--dns", "localhost")
    return out


@pytest.fixture
def tls_agent(tls_files) -> Iterator[KeepAliveAgent]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tls_files / "tls.crt", tls_files / "tls.key")
    server = KeepAliveAgent(tls=context)
    yield server
    server.stop()


def test_an_https_agent_is_read_when_its_certificate_is_trusted(tls_agent, tls_files, monkeypatch):
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_files / "ca.crt"))
    trusting = AgentClient(keyring=KEYRING, timeout=2.0)
    try:
        first = trusting.fetch(tls_agent.url, node="node-a")
        second = trusting.fetch(tls_agent.url, node="node-a", etag=ETAG)
    finally:
        trusting.close()
    assert first.status == "ok", first.error
    assert second.status == "not_modified", second.error
    assert len(tls_agent.connections) == 1


def test_an_https_agent_with_an_untrusted_certificate_is_never_sent_a_request(tls_agent, client):
    result = client.fetch(tls_agent.url, node="node-a")
    assert result.status == "error"
    assert result.error.startswith("request failed: ")
    assert "certificate" in result.error
    assert tls_agent.requests == []


def test_chunked_trailers_are_not_taken_for_the_answers_headers(agent, client):
    def chunked_with_trailer(handler):
        body = json.dumps(SNAPSHOT).encode()
        signed = {}
        request = auth.parse_authorization(handler.headers["Authorization"])
        signed[auth.SIGNATURE_HEADER] = auth.sign_answer(
            node_key("node-a"), node="node-a", nonce=request.nonce, status=200, etag=ETAG,
            body=body,
        )  # fmt: skip
        handler.send_response(200)
        handler.send_header("ETag", ETAG)
        handler.send_header(auth.SIGNATURE_HEADER, signed[auth.SIGNATURE_HEADER])
        handler.send_header("Transfer-Encoding", "chunked")
        handler.send_header("Trailer", "ETag")
        handler.end_headers()
        handler.wfile.write(b'%x\r\n%s\r\n0\r\nETag: "forged"\r\n\r\n' % (len(body), body))

    agent.behaviour = chunked_with_trailer
    result = client.fetch(agent.url, node="node-a")

    assert result.status == "ok", result.error
    assert result.etag == ETAG


def test_an_interim_answer_before_the_final_one_is_skipped(agent, client):
    def with_interim(handler):
        handler.wfile.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n")
        answer_json(SNAPSHOT)(handler)

    agent.behaviour = with_interim
    result = client.fetch(agent.url, node="node-a", etag=ETAG)
    assert (result.status, result.etag) == ("not_modified", ETAG)


def test_an_agent_whose_accept_queue_is_full_times_out_connecting():
    # A listener nobody accepts from, its backlog filled: the kernel drops further SYNs, so
    # the connection is never made (on loopback, without any other host).
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        fillers = []
        try:
            for _ in range(4):
                filler = socket.socket()
                filler.setblocking(False)
                filler.connect_ex(listener.getsockname())
                fillers.append(filler)
            slow = AgentClient(keyring=KEYRING, timeout=0.5)
            try:
                result = slow.fetch(f"http://127.0.0.1:{listener.getsockname()[1]}", node="n")
            finally:
                slow.close()
        finally:
            for filler in fillers:
                filler.close()
    assert (result.status, result.error) == ("error", "timeout after 0.5s (connecting)")
