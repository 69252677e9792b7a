"""Change hints: a netlink storm becomes a handful of POSTs; failures are retried."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from nodeagent import auth
from nodeagent.hints import HintSender
from nodeagent.keys import NodeKey
from tests.agent.conftest import CLUSTER, NODE, NODE_KEY, ip


class HintCounter(ThreadingHTTPServer):
    """A tiny portal: counts POSTs to /api/v1/agent-hints/, answers from a script of statuses."""

    daemon_threads = True

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.posts: list[dict] = []
        self.statuses = list(statuses or [])
        self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(handler):
                body = handler.rfile.read(int(handler.headers["Content-Length"]))
                with self.lock:
                    self.posts.append(
                        {
                            "path": handler.path,
                            "authorization": handler.headers.get("Authorization"),
                            "raw": body,
                            "body": json.loads(body),
                        }
                    )
                    status = self.statuses.pop(0) if self.statuses else 202
                handler.send_response(status)
                handler.send_header("Content-Length", "0")
                handler.end_headers()

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def wait_for(self, count: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and len(self.posts) < count:
            time.sleep(0.05)
        return len(self.posts)

    def quiet_count(self, quiet: float = 2.5, timeout: float = 30) -> int:
        """The number of POSTs once none has arrived for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        seen, since = len(self.posts), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.1)
            if len(self.posts) != seen:
                seen, since = len(self.posts), time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
        return seen


@pytest.fixture
def portal():
    server = HintCounter()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.netns
def test_it_turns_a_netlink_storm_into_a_handful_of_hints(make_netns, start_agent, portal):
    netns = make_netns("hints")
    ip("link", "add", "eth0", "type", "veth", "peer", "name", "eth1", netns=netns)
    ip("link", "set", "eth0", "up", netns=netns)
    start_agent("--netns", netns, "--portal-url", portal.url)
    assert portal.quiet_count(quiet=1.5) == 0  # no change, no hint
    started = time.monotonic()
    # 401 address changes in one `ip -batch`: 400+ netlink events (address and route each).
    # The last one adds an address, so the facts after the storm differ from those before it:
    # an agent that reads the whole storm in one go (a busy machine) still has a change to hint.
    commands = "".join(
        f"addr {'add' if i % 2 == 0 else 'del'} 10.66.{i // 200}.1/32 dev eth0\n"
        for i in range(401)
    )
    subprocess.run(["ip", "-n", netns, "-batch", "-"], input=commands, text=True, check=True)
    storm_seconds = time.monotonic() - started
    count = portal.quiet_count()
    # At most one per second, plus the leading and the trailing hint of the burst.
    assert 1 <= count <= int(storm_seconds) + 3, (count, storm_seconds)
    assert {post["path"] for post in portal.posts} == {"/api/v1/agent-hints/"}
    assert portal.posts[0]["body"] == {"node": "node-a", "reason": "netlink"}
    for post in portal.posts:
        assert_signed_by_node_a(post)
    nonces = {auth.parse_authorization(post["authorization"]).nonce for post in portal.posts}
    assert len(nonces) == len(portal.posts)


def assert_signed_by_node_a(post: dict) -> None:
    """Signed with node-a's key for exactly this body; no key material in the request."""
    request = auth.parse_authorization(post["authorization"])
    assert request.node == NODE
    auth.verify_request(
        request,
        {auth.key_id(NODE_KEY): NODE_KEY},
        direction=auth.AGENT_TO_PORTAL,
        method="POST",
        path=post["path"],
        body=post["raw"],
    )
    assert NODE_KEY.hex() not in post["authorization"]
    assert NODE_KEY.hex().encode() not in post["raw"]


def node_key(key_file, node: str = "node-b") -> NodeKey:
    return NodeKey(str(key_file), node=node, cluster=CLUSTER, master=False)


def test_it_retries_a_failed_hint_with_backoff(key_file):
    portal = HintCounter(statuses=[503, 500, 202])
    sender = HintSender(portal_url=portal.url + "/", node=NODE, key=node_key(key_file, NODE))
    sender.start()
    try:
        sender.notify()
        assert portal.wait_for(3, timeout=20) == 3
        assert portal.quiet_count(quiet=1.5) == 3  # the 202 ends the retries
        assert sender.sent == 1
        # Each attempt is signed afresh: a new nonce, so the portal's replay check passes.
        for post in portal.posts:
            assert_signed_by_node_a(post)
        assert len({auth.parse_authorization(p["authorization"]).nonce for p in portal.posts}) == 3
    finally:
        sender.stop()
        portal.shutdown()
        portal.server_close()


def test_it_does_not_retry_a_hint_the_portal_refuses(key_file):
    portal = HintCounter(statuses=[401])
    sender = HintSender(portal_url=portal.url, node="node-b", key=node_key(key_file))
    sender.start()
    try:
        sender.notify()
        assert portal.wait_for(1, timeout=10) == 1
        assert portal.quiet_count(quiet=2.5) == 1
        assert sender.sent == 0
    finally:
        sender.stop()
        portal.shutdown()
        portal.server_close()


def test_it_merges_notifications_that_arrive_together(key_file, portal):
    sender = HintSender(portal_url=portal.url, node="node-b", key=node_key(key_file))
    sender.start()
    try:
        for _ in range(500):
            sender.notify()
        assert portal.quiet_count(quiet=1.5) == 1
    finally:
        sender.stop()
