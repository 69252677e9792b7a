"""The agent's HTTP front door: GET /v1/snapshot (bearer token, ETag) and GET /healthz."""

from __future__ import annotations

import json
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from nodeagent.collector import CollectorError
from nodeagent.logs import log
from nodeagent.snapshot import SnapshotBuilder
from nodeagent.token import TokenFile
from nodeagent.version import __version__


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

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: object) -> None:
        pass  # one key=value line per request is written by _send instead

    def _send(self, status: int, body: bytes | None, headers: dict[str, str] | None = None):
        self.send_response(status)
        for key, value in (headers or {}).items():
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
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            self._json(200, {"status": "ok", "agent_version": __version__})
        elif path == "/v1/snapshot":
            self._snapshot()
        else:
            self._json(404, {"error": "not_found"})

    def _snapshot(self) -> None:
        if not self.server.token.matches(self.headers.get("Authorization")):
            # Nothing but the status: no hint whether the token was missing, wrong or unreadable.
            self._json(401, {"error": "unauthorized"}, {"WWW-Authenticate": "Bearer"})
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
        self._json(405, {"error": "method_not_allowed"}, {"Allow": "GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = _method_not_allowed


class AgentHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], *, snapshots: SnapshotBuilder, token: TokenFile):
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.snapshots = snapshots
        self.token = token
        super().__init__(address, AgentRequestHandler)
