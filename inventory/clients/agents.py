"""The only module that talks to node agents: `GET {agent}/v1/snapshot`, signed with the node's
key, as a conditional request (ETag); the answer's signature is checked before anything in it is
read, then the body is validated against the agent's own JSON Schema.

Authentication (nodeagent.auth, docs/agent-auth.md): the request carries HMACs made with the
node's key (derived from the master key, two during a rotation) over a fresh timestamp and nonce;
no secret leaves the portal, so a pod that is not the agent learns nothing it can reuse. The
answer must carry the agent's HMAC over our nonce, its status, ETag and body: an answer from
anything without the node's key is refused, whatever it says.

An agent is a program on somebody else's node: it may be down, slow, old, misconfigured or
compromised. So `fetch()` never raises for anything the agent does; every failure comes back as
`SnapshotResult(status="error", error=...)` with a message specific enough to act on, and the
caller (sync) keeps the last known facts and marks the node stale.

urllib3 is used directly (not requests): its PoolManager is thread-safe, so one AgentClient can
serve a whole thread pool of concurrent polls, and it lets the body be streamed and abandoned.
"""

from __future__ import annotations

import copy
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema
import urllib3
from django.conf import settings

from inventory.rules import bounded_json
from nodeagent import auth
from nodeagent.schema import SCHEMA_VERSION, SNAPSHOT_SCHEMA

if TYPE_CHECKING:  # the models need Django set up: the benchmarks import this module before
    from inventory.models import Cluster

SNAPSHOT_PATH = "/v1/snapshot"
# A cluster's own master key file (Cluster.agent_master_key_file) holds at least this many
# characters, as NICPORTAL_AGENT_MASTER_KEY must in production.
MIN_MASTER_KEY_LENGTH = 32
# A snapshot nests 5 levels (nodeagent.schema); this leaves room for the schema to grow.
SNAPSHOT_MAX_DEPTH = 16
_CHUNK = 64 * 1024
_ERROR_BODY_BYTES = 64 * 1024
# What an agent's 401 reason code means, in words a person can act on. Only these fixed texts
# are shown: the reason comes from an unsigned answer.
_REFUSALS = {
    "missing": "it saw no signature (is it an older agent?)",
    "wrong_scheme": "it expects another scheme (is it an older agent?)",
    "malformed": "it could not parse our signature",
    "unknown_key": "it holds another key: check NICPORTAL_AGENT_MASTER_KEY, the cluster name "
    "and the agent's key file",
    "bad_signature": "the signature did not match (a request for another address or path?)",
    "clock_skew": f"the clocks of portal and node differ by more than {auth.MAX_CLOCK_SKEW} s",
    "replayed": "it had seen our nonce already",
    "wrong_node": "the agent at this address serves another node",
    "busy": "too many requests",
}


class AgentKeyring:
    """The portal's master keys (current, then the previous one during a rotation) and the
    per-node keys derived from them."""

    def __init__(self, masters: list[bytes], *, cluster: str, problem: str = "") -> None:
        self.masters = [master for master in masters if master]
        self.cluster = cluster
        # Why there is no key, when a cluster's key file could not be read.
        self.problem = problem

    @classmethod
    def from_settings(cls) -> AgentKeyring:
        masters = [settings.AGENT_MASTER_KEY, settings.AGENT_MASTER_KEY_PREVIOUS]
        return cls([m.encode() for m in masters if m], cluster=settings.CLUSTER_NAME)

    @classmethod
    def for_cluster(cls, cluster: Cluster) -> AgentKeyring:
        """The keys of one registered cluster's agents: derived with the cluster's name from its
        own master key file(s) when its entry names them, else from NICPORTAL_AGENT_MASTER_KEY
        (and _PREVIOUS). The name alone already makes a node's key differ from the key of the
        same-named node of another cluster; a master per cluster also keeps one cluster's
        master from speaking for another's agents."""
        if not cluster.agent_master_key_file:
            masters = [settings.AGENT_MASTER_KEY, settings.AGENT_MASTER_KEY_PREVIOUS]
            return cls([m.encode() for m in masters if m], cluster=cluster.name)
        masters = []
        for path in (cluster.agent_master_key_file, cluster.agent_master_key_previous_file):
            if not path:
                continue
            try:
                key = Path(path).read_text().strip()
            except (OSError, UnicodeDecodeError) as exc:
                problem = f"cluster {cluster.name}: cannot read its agent master key file: {exc}"
                return cls([], cluster=cluster.name, problem=problem)
            if len(key) < MIN_MASTER_KEY_LENGTH:
                problem = (
                    f"cluster {cluster.name}: the agent master key in {path} is shorter than "
                    f"{MIN_MASTER_KEY_LENGTH} characters"
                )
                return cls([], cluster=cluster.name, problem=problem)
            masters.append(key.encode())
        return cls(masters, cluster=cluster.name)

    def __bool__(self) -> bool:
        return bool(self.masters)

    def node_keys(self, node: str) -> list[bytes]:
        """This node's keys, the current master's first."""
        return [auth.derive_node_key(m, cluster=self.cluster, node=node) for m in self.masters]

    def verification_keys(self, node: str) -> dict[str, bytes]:
        return {auth.key_id(key): key for key in self.node_keys(node)}


@dataclass(frozen=True, slots=True)
class SnapshotResult:
    status: str  # "ok" | "not_modified" | "error"
    snapshot: dict[str, Any] | None  # validated against nodeagent.schema.SNAPSHOT_SCHEMA
    etag: str  # the agent's ETag for "ok", the one we sent for "not_modified", else ""
    error: str  # "" or a specific, loggable message
    elapsed: float  # seconds

    @property
    def ok(self) -> bool:
        return self.status == "ok"


class _AgentFault(Exception):
    """Internal: one thing the agent did wrong; becomes SnapshotResult.error."""


@functools.cache
def _snapshot_validator() -> tuple[int, Callable[[Any], Any]]:
    # Compiled once per process: compiling the schema costs milliseconds, validating a snapshot
    # with the compiled function costs microseconds.
    return SCHEMA_VERSION, fastjsonschema.compile(SNAPSHOT_SCHEMA)


class AgentClient:
    def __init__(
        self,
        *,
        keyring: AgentKeyring,
        timeout: float = 5.0,
        max_bytes: int = 4 * 1024 * 1024,
        pool_size: int = 32,
    ) -> None:
        self.keyring = keyring
        # Derived keys per node: two HMACs saved per poll (a sweep polls every node).
        self._keys: dict[str, tuple[list[bytes], dict[str, bytes]]] = {}
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.pool_size = pool_size
        self._pool = self._new_pool()

    def _new_pool(self) -> urllib3.PoolManager:
        # num_pools: one pool per agent host:port kept alive across sweeps (fleets are bigger,
        # the least recently used pools are closed); maxsize: concurrent requests per agent.
        return urllib3.PoolManager(
            num_pools=max(self.pool_size, 10) * 8,
            maxsize=self.pool_size,
            retries=False,
            timeout=urllib3.Timeout(connect=self.timeout, read=self.timeout),
        )

    def forked(self) -> AgentClient:
        """This client for a forked process: same settings, its own connections. The pooled
        sockets inherited from the parent are left alone (closing or using them from two
        processes would interleave two conversations on one connection)."""
        clone = copy.copy(self)
        clone._pool = clone._new_pool()
        return clone

    @classmethod
    def from_settings(cls) -> AgentClient:
        return cls(
            keyring=AgentKeyring.from_settings(),
            timeout=settings.AGENT_TIMEOUT,
            max_bytes=settings.AGENT_MAX_BYTES,
        )

    @classmethod
    def for_cluster(cls, cluster: Cluster) -> AgentClient:
        """A client for one cluster's agents, with that cluster's keys."""
        return cls(
            keyring=AgentKeyring.for_cluster(cluster),
            timeout=settings.AGENT_TIMEOUT,
            max_bytes=settings.AGENT_MAX_BYTES,
        )

    def close(self) -> None:
        self._pool.clear()

    def fetch(self, url: str, *, node: str, etag: str = "") -> SnapshotResult:
        """GET {url}/v1/snapshot for `node`; "not_modified" when the agent's ETag is `etag`."""
        started = time.monotonic()
        try:
            status, snapshot, new_etag = self._fetch(url, node, etag, started)
        except _AgentFault as fault:
            return SnapshotResult("error", None, "", str(fault), time.monotonic() - started)
        return SnapshotResult(status, snapshot, new_etag, "", time.monotonic() - started)

    def _node_keys(self, node: str) -> tuple[list[bytes], dict[str, bytes]]:
        keys = self._keys.get(node)
        if keys is None:
            signing = self.keyring.node_keys(node)
            keys = self._keys[node] = (signing, {auth.key_id(k): k for k in signing})
        return keys

    def _fetch(
        self, url: str, node: str, etag: str, started: float
    ) -> tuple[str, dict[str, Any] | None, str]:
        if not self.keyring:
            raise _AgentFault(
                self.keyring.problem
                or "NICPORTAL_AGENT_MASTER_KEY is not set: the portal cannot authenticate to agents"
            )
        target = url.rstrip("/") + SNAPSHOT_PATH
        signing, verifying = self._node_keys(node)
        try:
            parsed = urllib3.util.parse_url(target)
        except urllib3.exceptions.LocationParseError as exc:
            raise _AgentFault(f"bad agent URL: {exc}") from None
        if not parsed.host:
            raise _AgentFault(f"bad agent URL: no host in {target!r}")
        authorization, signed = auth.sign_request(
            signing,
            direction=auth.PORTAL_TO_AGENT,
            method="GET",
            # Bound into the signature: the request is good at this address only.
            authority=auth.authority(parsed.host.strip("[]"), parsed.port or 80),
            path=parsed.request_uri,
            node=node,
        )
        headers = {"Accept": "application/json", "Authorization": authorization}
        if etag:
            headers["If-None-Match"] = etag
        try:
            # The URL is parsed once (above): its host's pool answers the path directly, without
            # PoolManager.request encoding and parsing it again (a sweep asks every node).
            pool = self._pool.connection_from_host(
                parsed.host, parsed.port, scheme=parsed.scheme or "http"
            )
            response = pool.urlopen(
                "GET",
                parsed.request_uri,
                headers=headers,
                preload_content=False,
                redirect=False,
                assert_same_host=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            raise _AgentFault(self._transport_error(exc)) from None
        except (OSError, ValueError) as exc:
            raise _AgentFault(f"request failed: {exc}") from None
        try:
            return self._answer(response, node, etag, started, signed.nonce, verifying)
        finally:
            # Closing (not draining) matters: a 10 MB answer we refused must not be read to the
            # end just to put the connection back in the pool.
            response.close()
            response.release_conn()

    def _answer(
        self,
        response: urllib3.BaseHTTPResponse,
        node: str,
        etag: str,
        started: float,
        nonce: str,
        keys: dict[str, bytes],
    ) -> tuple[str, dict[str, Any] | None, str]:
        if response.status == 401:
            snippet = self._read_body(response, started, limit=200, truncate=True)
            raise _AgentFault(f"HTTP 401 (the agent refused our signature: {_refusal(snippet)})")
        if response.status == 200:
            length = response.headers.get("Content-Length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                raise _AgentFault(f"body exceeds {self.max_bytes} bytes (Content-Length {length})")
            body = self._read_body(response, started, limit=self.max_bytes, truncate=False)
        else:
            # Whole (bounded): the signature covers the whole body; only its start is shown.
            body = self._read_body(response, started, limit=_ERROR_BODY_BYTES, truncate=False)
        answer_etag = response.headers.get("ETag", "")
        try:
            auth.verify_answer(
                response.headers.get(auth.SIGNATURE_HEADER),
                keys,
                node=node,
                nonce=nonce,
                status=response.status,
                etag=answer_etag,
                body=body,
            )
        except auth.AuthError as exc:
            # Nothing of an unverified answer is shown: not its body, not its headers.
            raise _AgentFault(
                f"HTTP {response.status} not signed with node {node}'s key ({exc.code}): ignored"
            ) from None
        if response.status == 304:
            return "not_modified", None, answer_etag or etag
        if response.status == 403:
            raise _AgentFault("HTTP 403 (forbidden)")
        if response.status != 200:
            text = body[:200].decode("utf-8", "replace").strip()
            raise _AgentFault(f"HTTP {response.status}" + (f": {text!r}" if text else ""))
        snapshot = self._validate(body, node)
        return "ok", snapshot, answer_etag

    def _read_body(
        self, response: urllib3.BaseHTTPResponse, started: float, *, limit: int, truncate: bool
    ) -> bytes:
        """Read at most `limit` bytes; past it, stop reading (error unless `truncate`).

        The read timeout bounds each wait for data; the deadline bounds the whole transfer, so
        an agent dripping one byte a second cannot hold a worker for minutes.
        """
        chunks: list[bytes] = []
        size = 0
        try:
            # read1, not read/stream: those wait for a full chunk, so an agent dripping bytes
            # would never give the deadline check below a chance to run.
            while chunk := response.read1(_CHUNK):
                size += len(chunk)
                chunks.append(chunk)
                if size > limit:
                    if truncate:
                        break
                    raise _AgentFault(f"body exceeds {limit} bytes")
                if time.monotonic() - started > self.timeout:
                    raise _AgentFault(f"timeout after {float(self.timeout)}s (body still arriving)")
        except urllib3.exceptions.HTTPError as exc:
            raise _AgentFault(self._transport_error(exc)) from None
        except OSError as exc:
            raise _AgentFault(f"reading the body failed: {exc}") from None
        return b"".join(chunks)[:limit]

    def _validate(self, body: bytes, node: str) -> dict[str, Any]:
        try:
            # Text that cannot be stored (NUL, lone surrogates) is refused with the field's path.
            document = bounded_json.loads(
                body,
                max_bytes=self.max_bytes,
                max_depth=SNAPSHOT_MAX_DEPTH,
                forbidden=bounded_json.UNSTORABLE,
            )
        except bounded_json.JsonRefused as refused:
            where = f" at {refused.field}" if refused.field else ""
            raise _AgentFault(f"snapshot refused{where}: {refused.message}") from None
        if not isinstance(document, dict):
            raise _AgentFault(f"schema: data must be object, got {type(document).__name__}")
        schema_version, validate = _snapshot_validator()
        if document.get("schema_version") != schema_version:
            raise _AgentFault(
                f"schema_version {document.get('schema_version')!r} is not supported "
                f"(this portal reads {schema_version}; upgrade the agent or the portal)"
            )
        reported = document.get("node")
        if isinstance(reported, str) and reported != node:
            raise _AgentFault(f"answer is for node {reported}, expected {node}")
        try:
            validate(document)
        except fastjsonschema.JsonSchemaException as exc:
            raise _AgentFault(f"schema: {exc.message}") from None
        except RecursionError:
            raise _AgentFault("schema: document nested too deeply") from None
        return document

    def _transport_error(self, exc: Exception) -> str:
        # Order matters: in urllib3 2.x NewConnectionError is a ConnectTimeoutError subclass.
        if isinstance(exc, urllib3.exceptions.NewConnectionError):
            text = str(exc)
            if "refused" in text.lower():
                return "connection refused"
            return f"cannot connect: {text.split(': ', 1)[-1]}"
        if isinstance(exc, urllib3.exceptions.ConnectTimeoutError):
            return f"timeout after {float(self.timeout)}s (connecting)"
        if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
            return f"timeout after {float(self.timeout)}s"
        if isinstance(exc, urllib3.exceptions.TimeoutError):
            return f"timeout after {float(self.timeout)}s"
        if isinstance(exc, urllib3.exceptions.LocationValueError):
            return f"bad agent URL: {exc}"
        if isinstance(exc, urllib3.exceptions.ProtocolError):
            return f"connection broken: {exc.args[0] if exc.args else exc}"
        return f"request failed: {exc}"


def _refusal(body: bytes) -> str:
    """The fixed explanation of an agent's 401 reason code (never the agent's own text)."""
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError, RecursionError):
        reason = None
    return (
        _REFUSALS.get(reason, "no reason given") if isinstance(reason, str) else "no reason given"
    )
