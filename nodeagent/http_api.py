"""The agent's HTTP front door: GET /v1/snapshot (signed request and answer, ETag) and
GET /healthz (open: it says nothing but "up").

A snapshot request must carry the portal's signature for this node (nodeagent.auth); every
answer to it carries this agent's signature over the request's nonce, so the portal can tell
the answer came from this node's key holder, for its own request. Nothing secret is ever sent.
"""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nodeagent import auth
from nodeagent.collector import CollectorError
from nodeagent.keys import KeyFileError, NodeKey
from nodeagent.logs import log
from nodeagent.snapshot import SnapshotBuilder
from nodeagent.version import __version__

SNAPSHOT_PATH = "/v1/snapshot"


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    if header.strip() == "*":
        return True
    # Weak comparison (RFC 9110 13.1.2): a proxy may have weakened our strong tag.
    candidates = {part.strip().removeprefix("W/") for part in header.split(",")}
    return etag in candidates


class AgentRequestHandler(BaseHTTPRequestHandler):
    server_version = f"nicportal-agent/{__version__}"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; on a kept-alive connection Nagle's algorithm holds
    # the body until the client ACKs the headers, which it delays by up to 40 ms.
    disable_nagle_algorithm = True
    server: AgentHTTPServer
    # The nonce of an authenticated snapshot request: its answer is signed over it.
    _answer_nonce: str | None = None

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        pass  # one key=value line per request is written by _send instead

    def _send(self, status: int, body: bytes | None, headers: dict[str, str] | None = None):
        headers = dict(headers or {})
        if self._answer_nonce is not None:
            # Signed with the current key: an answer the portal can verify, or none at all.
            try:
                headers[auth.SIGNATURE_HEADER] = auth.sign_answer(
                    self.server.key.current(),
                    node=self.server.key.node,
                    nonce=self._answer_nonce,
                    status=status,
                    etag=headers.get("ETag", ""),
                    body=body or b"",
                )
            except KeyFileError:
                pass
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body or b"")))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)
        log(
            "info",
            "request",
            method=self.command,
            path=self.path,
            status=status,
            client=self.client_address[0],
        )

    def _json(self, status: int, payload: dict, headers: dict[str, str] | None = None):
        self._send(status, json.dumps(payload).encode() + b"\n", headers)

    def do_GET(self) -> None:
        self._answer_nonce = None
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._json(200, {"status": "ok", "agent_version": __version__})
        elif path == SNAPSHOT_PATH:
            self._snapshot()
        else:
            self._json(404, {"error": "not_found"})

    def _authenticate(self) -> bool:
        """Verify the portal's signature; on failure answer 401 with a fixed reason code (no
        secret, no snapshot data) and log why."""
        key = self.server.key
        try:
            request = auth.parse_authorization(self.headers.get("Authorization"))
            if request.node != key.node:
                raise auth.AuthError(
                    "wrong_node", f"signed for node {request.node}, this is {key.node}"
                )
            # The address this connection arrived on: a request signed for another address (sent
            # to somebody else, who forwards it here) does not verify.
            local = self.connection.getsockname()
            auth.verify_request(
                request,
                key.keys(),
                direction=auth.PORTAL_TO_AGENT,
                method="GET",
                authority=auth.authority(local[0], local[1]),
                path=self.path,
            )
            self.server.nonces.remember(request.nonce, request.ts)
        except KeyFileError as error:
            log("error", "key_unreadable", detail=str(error))
            self._json(503, {"error": "key_unreadable"}, {"Retry-After": "5"})
            return False
        except auth.AuthError as error:
            client = self.client_address[0]
            log("warning", "unauthorized", reason=error.code, detail=str(error), client=client)
            self._json(
                401,
                {"error": "unauthorized", "reason": error.code},
                {"WWW-Authenticate": auth.SCHEME},
            )
            return False
        self._answer_nonce = request.nonce
        return True

    def _snapshot(self) -> None:
        if not self._authenticate():
            return
        try:
            document, etag = self.server.snapshots.build()
        except CollectorError as error:
            log("error", "snapshot_failed", reason=error.code, detail=str(error))
            self._json(503, {"error": error.code, "detail": str(error)}, {"Retry-After": "5"})
            return
        headers = {"ETag": etag, "Cache-Control": "no-cache"}
        if _etag_matches(self.headers.get("If-None-Match"), etag):
            self._send(304, None, headers)
            return
        body = json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
        self._send(200, body, headers)

    def _method_not_allowed(self) -> None:
        self._answer_nonce = None
        self._json(405, {"error": "method_not_allowed"}, {"Allow": "GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _method_not_allowed


class AgentHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, snapshots: SnapshotBuilder, key: NodeKey):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.snapshots = snapshots
        self.key = key
        self.nonces = auth.NonceMemory()
        super().__init__(address, AgentRequestHandler)
