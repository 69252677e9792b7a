"""Change hints to the portal: "node X changed, poll it now".

Contract: ``POST {portal_url}/api/v1/agent-hints/`` with ``{"node": NAME, "reason": "netlink"}``,
signed with this node's key (``Authorization: NPA1-HMAC-SHA256 ...``, nodeagent.auth: a fresh
timestamp and nonce each attempt, so a captured hint cannot be replayed); the portal answers 202.
The portal accepts a hint for the node whose key signed it only. Nothing secret is sent, so the
agent needs no proof of who answers: an impostor learns that the node changed, nothing more.
Hints only make the portal faster (it polls anyway), so a hint may be merged with others or
dropped after a few retries.

Rate: a burst of events (a CNI ADD touches links, addresses and routes many times) waits
COALESCE_SECONDS, then becomes one POST; never more than one POST per MIN_INTERVAL_SECONDS,
retries included. Events that arrive while a POST is in flight make exactly one more POST.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from nodeagent import auth
from nodeagent.keys import KeyFileError, NodeKey
from nodeagent.logs import log
from nodeagent.version import __version__

HINT_PATH = "/api/v1/agent-hints/"
MIN_INTERVAL_SECONDS = 1.0
COALESCE_SECONDS = 0.2
MAX_ATTEMPTS = 5
MAX_BACKOFF_SECONDS = 30.0
POST_TIMEOUT_SECONDS = 5.0


class HintSender:
    def __init__(self, *, portal_url: str, node: str, key: NodeKey) -> None:
        self.url = portal_url.rstrip("/") + HINT_PATH
        self.path = urllib.parse.urlsplit(self.url).path
        self.node = node
        self.key = key
        self._pending = threading.Event()
        self._stop = threading.Event()
        self._last_post = float("-inf")
        # Hints go straight to the portal; a node's HTTP(S)_PROXY is for the internet, not for
        # an in-cluster Service.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        self._thread = threading.Thread(target=self._run, name="hint-sender", daemon=True)
        self.sent = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._pending.set()
        self._thread.join(timeout=3)

    def notify(self) -> None:
        """Something changed (called from the netlink monitor thread). Never blocks."""
        self._pending.set()

    def _run(self) -> None:
        while True:
            self._pending.wait()
            if self._stop.is_set():
                return
            delay = max(COALESCE_SECONDS, self._last_post + MIN_INTERVAL_SECONDS - time.monotonic())
            if self._stop.wait(delay):
                return
            self._pending.clear()
            self._deliver()

    def _deliver(self) -> None:
        backoff = MIN_INTERVAL_SECONDS
        for attempt in range(1, MAX_ATTEMPTS + 1):
            self._last_post = time.monotonic()
            outcome = self._post()
            if outcome == "done":
                self.sent += 1
                return
            if outcome == "give_up":
                return
            if attempt == MAX_ATTEMPTS:
                break
            if self._stop.wait(backoff):
                return
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)
        log("warning", "hint_dropped", url=self.url, attempts=MAX_ATTEMPTS)

    def _post(self) -> str:
        body = json.dumps({"node": self.node, "reason": "netlink"}).encode()
        try:
            authorization, _ = auth.sign_request(
                [self.key.current()],
                direction=auth.AGENT_TO_PORTAL,
                method="POST",
                path=self.path,
                node=self.node,
                body=body,
            )
        except KeyFileError as error:
            log("error", "hint_not_sent", reason=str(error))
            return "give_up"
        # The scheme was checked to be http(s) in config.parse_args.
        request = urllib.request.Request(  # noqa: S310
            self.url,
            data=body,
            method="POST",
            headers={
                "Authorization": authorization,
                "Content-Type": "application/json",
                "User-Agent": f"nicportal-agent/{__version__}",
            },
        )
        try:
            with self._opener.open(request, timeout=POST_TIMEOUT_SECONDS) as response:
                response.read()
                log("info", "hint_sent", url=self.url, status=response.status)
                return "done"
        except urllib.error.HTTPError as error:
            error.close()
            # 4xx other than "try later" will not get better by retrying (wrong key, no route).
            if 400 <= error.code < 500 and error.code not in (408, 429):
                log("error", "hint_rejected", url=self.url, status=error.code)
                return "give_up"
            log("warning", "hint_failed", url=self.url, status=error.code)
            return "retry"
        except (urllib.error.URLError, OSError) as error:
            log("warning", "hint_failed", url=self.url, error=getattr(error, "reason", error))
            return "retry"
