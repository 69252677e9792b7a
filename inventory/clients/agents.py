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

HTTP is libcurl's, through pycurl: the request is written and the answer parsed in C, which a
sweep needs (it asks every node; the Python HTTP stack was most of a warm sweep's CPU). libcurl
handles are not thread-safe: each fetch takes an idle one (a new one when none is idle) and
gives it back, so a client has as many as it ever ran fetches at once, and their connections
stay open from one request to the next (keep-alive). Only http and https,
no proxy, no redirect followed, TLS verified against the system's CA store (Python's OpenSSL
default paths, SSL_CERT_FILE / SSL_CERT_DIR honoured), one deadline for the whole exchange, and
a write callback that stops a body past its limit.
"""

from __future__ import annotations

import copy
import errno
import functools
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import fastjsonschema
import jsonschema_rs
import pycurl
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
_ERROR_BODY_BYTES = 64 * 1024
# Of a 401's body only the reason code is read: this much of it.
_REFUSAL_BYTES = 200
_SIGNATURE = auth.SIGNATURE_HEADER.lower()
# libcurl's errors for a connection that broke or an answer that is no HTTP/1.1 answer.
_BROKEN = frozenset(
    {
        pycurl.E_UNSUPPORTED_PROTOCOL,  # an HTTP/0.9 answer (no status line)
        pycurl.E_FTP_WEIRD_SERVER_REPLY,  # CURLE_WEIRD_SERVER_REPLY (8) in libcurl 7.51+
        pycurl.E_PARTIAL_FILE,
        pycurl.E_GOT_NOTHING,
        pycurl.E_SEND_ERROR,
        pycurl.E_RECV_ERROR,
    }
)
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


@functools.cache
def _snapshot_passes() -> Callable[[Any], bool]:
    """The same schema's yes-or-no check, compiled by jsonschema-rs (Rust): 20-35 us for a
    16-link snapshot against fastjsonschema's 135-205 us, which a cold sweep pays on every
    node. A snapshot it passes is valid; one it does not pass goes through fastjsonschema,
    whose verdict and message are the ones that count, so where the two read the schema
    differently (Python's `\\d` matches any Unicode digit, Rust's here ASCII ones) the answer
    is fastjsonschema's as before. That it never passes what fastjsonschema
    refuses is tested on mutated snapshots (tests/unit/test_agent_schema_checks.py)."""
    return jsonschema_rs.validator_for(SNAPSHOT_SCHEMA).is_valid


@dataclass(frozen=True, slots=True)
class _Target:
    url: str  # what libcurl asks for
    authority: str  # host:port, bound into the request's signature
    path: str  # the path and query, signed and sent as they are


@functools.lru_cache(maxsize=65536)
def _target(target: str) -> _Target | str:
    """An agent URL parsed once (a sweep asks every node at every pass), or why it is bad."""
    try:
        parsed = urllib3.util.parse_url(target)
    except urllib3.exceptions.LocationParseError as exc:
        return f"bad agent URL: {exc}"
    if not parsed.host:
        return f"bad agent URL: no host in {target!r}"
    scheme = parsed.scheme or "http"
    if scheme not in ("http", "https"):
        return f"bad agent URL: Not supported URL scheme {scheme}"
    netloc = parsed.host + (f":{parsed.port}" if parsed.port else "")
    return _Target(
        url=f"{scheme}://{netloc}{parsed.request_uri}",
        # The address the agent's socket has: a URL without a port means the scheme's port.
        authority=auth.authority(
            parsed.host.strip("[]"), parsed.port or (443 if scheme == "https" else 80)
        ),
        path=parsed.request_uri,
    )


def _new_handle(timeout: float, connections: int) -> pycurl.Curl:
    handle = pycurl.Curl()
    # Timeouts without SIGALRM: handles run in the sweep's threads.
    handle.setopt(pycurl.NOSIGNAL, 1)
    handle.setopt(pycurl.PROTOCOLS, pycurl.PROTO_HTTP | pycurl.PROTO_HTTPS)
    # A redirect is an answer like any other (signed or refused), never followed.
    handle.setopt(pycurl.FOLLOWLOCATION, 0)
    # Straight to the agent: no proxy from the environment sees the signed request.
    handle.setopt(pycurl.PROXY, "")
    handle.setopt(pycurl.HTTP_VERSION, pycurl.CURL_HTTP_VERSION_1_1)
    # The path that was signed is the path sent (no dot-segment clean-up by libcurl).
    handle.setopt(pycurl.PATH_AS_IS, 1)
    # The signature covers the bytes the agent sent: nothing is decoded before it is checked.
    handle.setopt(pycurl.HTTP_CONTENT_DECODING, 0)
    milliseconds = max(1, int(timeout * 1000))
    handle.setopt(pycurl.TIMEOUT_MS, milliseconds)  # the whole exchange
    handle.setopt(pycurl.CONNECTTIMEOUT_MS, milliseconds)
    handle.setopt(pycurl.MAXCONNECTS, max(1, connections))
    handle.setopt(pycurl.SSL_VERIFYPEER, 1)
    handle.setopt(pycurl.SSL_VERIFYHOST, 2)
    handle.setopt(pycurl.SSLVERSION, pycurl.SSLVERSION_TLSv1_2)
    # The CA store Python's ssl (and so urllib3) trusts, not the one libcurl was built with;
    # a CA file that does not exist makes every https request fail, never pass unverified.
    paths = ssl.get_default_verify_paths()
    handle.setopt(pycurl.CAINFO, paths.cafile or paths.openssl_cafile)
    if paths.capath:
        handle.setopt(pycurl.CAPATH, paths.capath)
    return handle


class _Answer:
    """One exchange as libcurl hands it over: the header lines as they came (collected by a
    builtin append: no Python frame per line), then the body through `write`, which stops the
    transfer past the limit its status allows."""

    __slots__ = ("max_bytes", "header_lines", "chunks", "size", "limit", "truncated", "fault")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.header_lines: list[bytes] = []
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = -1  # known at the body's first bytes
        self.truncated = False  # a 401's body, cut at the reason code's length
        self.fault = ""

    def write(self, chunk: bytes) -> int | None:
        """libcurl's write callback: 0 stops the transfer (CURLE_WRITE_ERROR)."""
        if self.limit < 0:
            try:
                status, headers = self.head()
            except _AgentFault as fault:
                self.fault = str(fault)
                return 0
            self.limit = self.max_bytes if status == 200 else _ERROR_BODY_BYTES
            if status == 401:
                self.limit = _REFUSAL_BYTES
            length = headers.get("content-length")
            if status == 200 and length is not None and length.isdigit():
                if int(length) > self.max_bytes:
                    self.fault = f"body exceeds {self.max_bytes} bytes (Content-Length {length})"
                    return 0
        self.size += len(chunk)
        self.chunks.append(chunk)
        if self.size > self.limit:
            if self.limit == _REFUSAL_BYTES:
                self.truncated = True
            else:
                self.fault = f"body exceeds {self.limit} bytes"
            return 0
        return None

    def body(self) -> bytes:
        body = b"".join(self.chunks)
        return body[: self.limit] if self.truncated else body

    def head(self) -> tuple[int, dict[str, str]]:
        """The final answer's status and headers (names in lower case, repeated ones joined
        with ", "); interim (1xx) heads before it and chunked trailers after it are left out.
        libcurl has read the framing; the lines are only split here."""
        lines, start = self.header_lines, 0
        while True:
            end = start + 1
            while end < len(lines) and lines[end] not in (b"\r\n", b"\n"):
                end += 1
            try:
                status = int(lines[start].split(None, 2)[1])
            except (IndexError, ValueError):
                raise _AgentFault("connection broken: no status line") from None
            if status >= 200 or end + 1 >= len(lines):
                break
            start = end + 1
        headers: dict[str, str] = {}
        for line in lines[start + 1 : end]:
            name, colon, value = line.decode("latin-1").partition(":")
            if not colon:
                continue
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        return status, headers


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
        # Connections each libcurl handle keeps open (one per agent host:port, the least
        # recently used closed past this).
        self.pool_size = pool_size
        # The libcurl handles not in use. A handle is not thread-safe: a fetch takes one (or
        # makes one) and gives it back when done, so there are as many as fetches ever ran at
        # once (a sweep's threads), and each keeps its connections alive from one request to
        # the next, across thread pools and sweeps. list.append and list.pop are atomic.
        self._idle: list[pycurl.Curl] = []

    def forked(self) -> AgentClient:
        """This client for a forked process: same settings, its own connections. The handles
        and sockets inherited from the parent are left alone (closing or using them from two
        processes would interleave two conversations on one connection)."""
        clone = copy.copy(self)
        clone._idle = []
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
        """Close the handles and their connections (no fetch may be running)."""
        while self._idle:
            self._idle.pop().close()

    def fetch(self, url: str, *, node: str, etag: str = "") -> SnapshotResult:
        """GET {url}/v1/snapshot for `node`; "not_modified" when the agent's ETag is `etag`."""
        started = time.monotonic()
        try:
            status, snapshot, new_etag = self._fetch(url, node, etag)
        except _AgentFault as fault:
            return SnapshotResult("error", None, "", str(fault), time.monotonic() - started)
        return SnapshotResult(status, snapshot, new_etag, "", time.monotonic() - started)

    def _node_keys(self, node: str) -> tuple[list[bytes], dict[str, bytes]]:
        keys = self._keys.get(node)
        if keys is None:
            signing = self.keyring.node_keys(node)
            keys = self._keys[node] = (signing, {auth.key_id(k): k for k in signing})
        return keys

    def _fetch(self, url: str, node: str, etag: str) -> tuple[str, dict[str, Any] | None, str]:
        if not self.keyring:
            raise _AgentFault(
                self.keyring.problem
                or "NICPORTAL_AGENT_MASTER_KEY is not set: the portal cannot authenticate to agents"
            )
        target = _target(url.rstrip("/") + SNAPSHOT_PATH)
        if isinstance(target, str):
            raise _AgentFault(target)
        signing, verifying = self._node_keys(node)
        authorization, signed = auth.sign_request(
            signing,
            direction=auth.PORTAL_TO_AGENT,
            method="GET",
            # Bound into the signature: the request is good at this address only.
            authority=target.authority,
            path=target.path,
            node=node,
        )
        headers = ["Accept: application/json", "Authorization: " + authorization]
        if etag:
            headers.append("If-None-Match: " + etag)
        if any(character in header for header in headers for character in "\r\n\0"):
            # libcurl sends header lines as given: a line break would start another header.
            raise _AgentFault("request failed: a header value holds a line break or NUL")
        answer = _Answer(self.max_bytes)
        try:
            handle = self._idle.pop()
        except IndexError:
            handle = _new_handle(self.timeout, self.pool_size)
        try:
            handle.setopt(pycurl.URL, target.url)
            handle.setopt(pycurl.HTTPHEADER, headers)
            handle.setopt(pycurl.HEADERFUNCTION, answer.header_lines.append)
            handle.setopt(pycurl.WRITEFUNCTION, answer.write)
            handle.perform()
        except pycurl.error as exc:
            code, message = exc.args
            if not answer.truncated:
                raise _AgentFault(self._transport_error(handle, answer, code, message)) from None
        finally:
            self._idle.append(handle)
        status, answer_headers = answer.head()
        return self._answer(
            status, answer_headers, answer.body(), node, etag, signed.nonce, verifying
        )

    def _answer(
        self,
        status: int,
        headers: dict[str, str],
        body: bytes,
        node: str,
        etag: str,
        nonce: str,
        keys: dict[str, bytes],
    ) -> tuple[str, dict[str, Any] | None, str]:
        if status == 401:
            raise _AgentFault(f"HTTP 401 (the agent refused our signature: {_refusal(body)})")
        answer_etag = headers.get("etag", "")
        try:
            auth.verify_answer(
                headers.get(_SIGNATURE),
                keys,
                node=node,
                nonce=nonce,
                status=status,
                etag=answer_etag,
                body=body,
            )
        except auth.AuthError as exc:
            # Nothing of an unverified answer is shown: not its body, not its headers.
            raise _AgentFault(
                f"HTTP {status} not signed with node {node}'s key ({exc.code}): ignored"
            ) from None
        if status == 304:
            return "not_modified", None, answer_etag or etag
        if status == 403:
            raise _AgentFault("HTTP 403 (forbidden)")
        if status != 200:
            text = body[:200].decode("utf-8", "replace").strip()
            raise _AgentFault(f"HTTP {status}" + (f": {text!r}" if text else ""))
        snapshot = self._validate(body, node)
        return "ok", snapshot, answer_etag

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
            if not _passes(document):
                validate(document)
        except fastjsonschema.JsonSchemaException as exc:
            raise _AgentFault(f"schema: {exc.message}") from None
        except RecursionError:
            raise _AgentFault("schema: document nested too deeply") from None
        return document

    def _transport_error(
        self, handle: pycurl.Curl, answer: _Answer, code: int, message: str
    ) -> str:
        if answer.fault:  # the write callback stopped the transfer, and said why
            return answer.fault
        if code == pycurl.E_OPERATION_TIMEDOUT:
            # One deadline (CURLOPT_TIMEOUT_MS) bounds the whole exchange, so an agent dripping
            # one byte a second cannot hold a worker for minutes.
            if answer.size:
                return f"timeout after {float(self.timeout)}s (body still arriving)"
            if not answer.header_lines and not handle.getinfo(pycurl.CONNECT_TIME):
                return f"timeout after {float(self.timeout)}s (connecting)"
            return f"timeout after {float(self.timeout)}s"
        if code == pycurl.E_COULDNT_CONNECT:
            if handle.getinfo(pycurl.OS_ERRNO) == errno.ECONNREFUSED:
                return "connection refused"
            return f"cannot connect: {message}"
        if code == pycurl.E_COULDNT_RESOLVE_HOST:
            return f"cannot connect: {message}"
        if code in _BROKEN:
            return f"connection broken: {message}"
        if code == pycurl.E_URL_MALFORMAT:
            return f"bad agent URL: {message}"
        return f"request failed: {message}"


def _passes(document: Any) -> bool:
    """True when jsonschema-rs finds the snapshot valid; False sends it to fastjsonschema (so
    does a value the Rust side cannot take, which a parsed JSON document should never hold)."""
    try:
        return _snapshot_passes()(document)
    except (ValueError, TypeError, OverflowError):
        return False


def _refusal(body: bytes) -> str:
    """The fixed explanation of an agent's 401 reason code (never the agent's own text)."""
    try:
        reason = json.loads(body).get("reason")
    except (ValueError, AttributeError, RecursionError):
        reason = None
    return (
        _REFUSALS.get(reason, "no reason given") if isinstance(reason, str) else "no reason given"
    )
