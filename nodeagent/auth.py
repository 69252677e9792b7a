"""How the portal and the node agents authenticate each other (docs/agent-auth.md).

Pure functions and one small class, shared by both sides so that the two can never drift: the
agent imports it, and so does the portal (inventory.clients.agents, inventory.hints).

Keys. The portal holds a master key. Every node has its own key,

    node_key = HMAC-SHA256(master, "nicportal agent key v1" NUL cluster NUL node)

so a node's key speaks for that node only, and a key from one cluster is worthless in another
that happens to have a node of the same name. A key is never sent anywhere: only HMACs travel.
A key id (the first 16 hex digits of HMAC(node_key, "nicportal key id")) names a key without
revealing it, which lets the portal keep two masters during a rotation.

Requests, both directions (portal -> agent `GET /v1/snapshot`, agent -> portal hint `POST`):

    Authorization: NPA1-HMAC-SHA256 node=<node>,ts=<unix s>,nonce=<32 hex>,sig=<kid>:<hex>[;...]

where each signature is HMAC(node_key, request_message(...)). The message binds the direction,
the method, the address it was sent to (host:port, portal -> agent only), the path, the node, the
time, the nonce and the SHA-256 of the body, so a signature is good for that one request only;
an agent refuses a request signed for another address than the one it arrived on, so whoever
receives a request meant for an agent cannot forward it to the real one. The receiver accepts a
timestamp within MAX_CLOCK_SKEW of its own clock and each nonce once (the "replay window"): a
captured request cannot be replayed later, and replaying it at once is refused by the nonce
check. A signature from a request cannot be turned into one for an answer or for the other
direction (different message prefixes).

Answers of the agent carry `X-NICPortal-Signature: <kid>:<hex>` over the request's nonce, the
status, the ETag and the SHA-256 of the body: the portal knows that the answer comes from the
holder of that node's key, for its own request, unaltered.

Every comparison of a MAC is constant-time (hmac.compare_digest).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

SCHEME = "NPA1-HMAC-SHA256"
SIGNATURE_HEADER = "X-NICPortal-Signature"
KEY_CONTEXT = b"nicportal agent key v1"
KEY_ID_CONTEXT = b"nicportal key id"
PORTAL_TO_AGENT = "portal-to-agent"
AGENT_TO_PORTAL = "agent-to-portal"
AGENT_ANSWER = "agent-answer"
# Clocks of nodes and portal are NTP-synchronised; two minutes absorbs a node whose clock slipped
# without making the replay window (and the nonce memory) large.
MAX_CLOCK_SKEW = 120
NONCE_HEX = 32
KEY_ID_HEX = 16
MAX_SIGNATURES = 4
MAX_HEADER_LENGTH = 1024
# A node name is a DNS-1123 subdomain (at most 253 characters).
_NODE = r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?"
NODE_NAME = re.compile(_NODE)
_AUTHORIZATION = re.compile(
    rf"^{SCHEME} node=(?P<node>{_NODE}),ts=(?P<ts>[0-9]{{1,12}}),"
    rf"nonce=(?P<nonce>[0-9a-f]{{{NONCE_HEX}}}),"
    rf"sig=(?P<sigs>[0-9a-f]{{{KEY_ID_HEX}}}:[0-9a-f]{{64}}"
    rf"(;[0-9a-f]{{{KEY_ID_HEX}}}:[0-9a-f]{{64}}){{0,{MAX_SIGNATURES - 1}}})$"
)
_ANSWER_SIGNATURE = re.compile(rf"^(?P<kid>[0-9a-f]{{{KEY_ID_HEX}}}):(?P<mac>[0-9a-f]{{64}})$")
EMPTY_BODY_DIGEST = hashlib.sha256(b"").hexdigest()


class AuthError(Exception):
    """A request or answer that does not authenticate. `code` is a fixed word (safe to send
    back and to log); the message is for the receiver's own log."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- keys ------------------------------------------------------------------------------------


def derive_node_key(master: bytes, *, cluster: str, node: str) -> bytes:
    """The key of one node of one cluster. NUL cannot occur in either name, so the encoding
    is unambiguous ("a" + "b\\0c" never equals "a\\0b" + "c")."""
    if not master:
        raise ValueError("the master key is empty")
    message = b"\0".join([KEY_CONTEXT, cluster.encode(), node.encode()])
    return hmac.new(master, message, hashlib.sha256).digest()


def key_id(node_key: bytes) -> str:
    """A public name for a key: which master a signature was made with, nothing more."""
    return hmac.new(node_key, KEY_ID_CONTEXT, hashlib.sha256).hexdigest()[:KEY_ID_HEX]


def parse_node_key(text: str) -> bytes:
    """A node key as written by `manage.py agentkey`: 64 hex digits."""
    value = text.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ValueError("a node key is 64 hex digits (as printed by `manage.py agentkey`)")
    return bytes.fromhex(value)


def format_node_key(node_key: bytes) -> str:
    return node_key.hex()


# --- messages --------------------------------------------------------------------------------


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest() if body else EMPTY_BODY_DIGEST


def request_message(
    *,
    direction: str,
    method: str,
    authority: str,
    path: str,
    node: str,
    ts: int,
    nonce: str,
    digest: str,
) -> bytes:
    fields = [SCHEME, direction, method.upper(), authority, path, node, str(ts), nonce, digest]
    return "\n".join(fields).encode()


def authority(host: str, port: int) -> str:
    """host:port as the portal writes it in an agent URL ([v6]:port); an IPv4 address seen
    through a dual-stack socket (::ffff:a.b.c.d) is written as the IPv4 address."""
    host = host.removeprefix("::ffff:") if "." in host else host
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def answer_message(*, node: str, nonce: str, status: int, etag: str, digest: str) -> bytes:
    return "\n".join([SCHEME, AGENT_ANSWER, node, nonce, str(status), etag, digest]).encode()


def mac(key: bytes, message: bytes) -> str:
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def new_nonce() -> str:
    return secrets.token_hex(NONCE_HEX // 2)


@dataclass(frozen=True, slots=True)
class SignedRequest:
    node: str
    ts: int
    nonce: str
    signatures: tuple[tuple[str, str], ...]  # (key id, hex MAC)


def sign_request(
    keys: Iterable[bytes],
    *,
    direction: str,
    method: str,
    path: str,
    node: str,
    authority: str = "",
    body: bytes = b"",
    now: float | None = None,
    nonce: str | None = None,
) -> tuple[str, SignedRequest]:
    """The Authorization header for one request, signed with each key (the current key first;
    two during a rotation), and what it says."""
    ts = int(time.time() if now is None else now)
    nonce = nonce or new_nonce()
    message = request_message(
        direction=direction,
        method=method,
        authority=authority,
        path=path,
        node=node,
        ts=ts,
        nonce=nonce,
        digest=body_digest(body),
    )
    signatures = tuple((key_id(key), mac(key, message)) for key in keys)
    if not signatures:
        raise ValueError("no key to sign with")
    header = f"{SCHEME} node={node},ts={ts},nonce={nonce},sig=" + ";".join(
        f"{kid}:{value}" for kid, value in signatures
    )
    return header, SignedRequest(node, ts, nonce, signatures)


def parse_authorization(header: str | None) -> SignedRequest:
    if not header:
        raise AuthError("missing", f"no Authorization header ({SCHEME} expected)")
    if len(header) > MAX_HEADER_LENGTH:
        raise AuthError("malformed", f"Authorization header longer than {MAX_HEADER_LENGTH}")
    match = _AUTHORIZATION.match(header)
    if match is None:
        scheme = header.split(" ", 1)[0][:40]
        if scheme != SCHEME:
            raise AuthError("wrong_scheme", f"Authorization scheme {scheme!r}, not {SCHEME}")
        raise AuthError("malformed", "Authorization header does not parse")
    signatures = tuple(
        (part[:KEY_ID_HEX], part[KEY_ID_HEX + 1 :]) for part in match["sigs"].split(";")
    )
    return SignedRequest(match["node"], int(match["ts"]), match["nonce"], signatures)


def check_clock(ts: int, *, now: float | None = None, skew: int = MAX_CLOCK_SKEW) -> None:
    current = time.time() if now is None else now
    if abs(current - ts) > skew:
        raise AuthError(
            "clock_skew",
            f"timestamp {ts} is {current - ts:+.0f} s from this clock (at most ±{skew} s)",
        )


def verify_request(
    request: SignedRequest,
    keys: Mapping[str, bytes],
    *,
    direction: str,
    method: str,
    path: str,
    authority: str = "",
    body: bytes = b"",
    now: float | None = None,
) -> str:
    """Check the time and one signature made with one of `keys` (key id -> node key); return
    the key id that verified. The nonce is the caller's to remember (after this succeeds, so
    that nobody without a key can fill the caller's memory)."""
    check_clock(request.ts, now=now)
    message = request_message(
        direction=direction,
        method=method,
        authority=authority,
        path=path,
        node=request.node,
        ts=request.ts,
        nonce=request.nonce,
        digest=body_digest(body),
    )
    return _verify(message, request.signatures, keys)


def sign_answer(key: bytes, *, node: str, nonce: str, status: int, etag: str, body: bytes) -> str:
    message = answer_message(
        node=node, nonce=nonce, status=status, etag=etag, digest=body_digest(body)
    )
    return f"{key_id(key)}:{mac(key, message)}"


def verify_answer(
    header: str | None,
    keys: Mapping[str, bytes],
    *,
    node: str,
    nonce: str,
    status: int,
    etag: str,
    body: bytes,
) -> str:
    """Check an agent's answer signature; return the key id that verified."""
    if not header:
        raise AuthError("unsigned", f"the answer has no {SIGNATURE_HEADER} header")
    match = _ANSWER_SIGNATURE.match(header.strip())
    if match is None:
        raise AuthError("malformed", f"{SIGNATURE_HEADER} does not parse")
    message = answer_message(
        node=node, nonce=nonce, status=status, etag=etag, digest=body_digest(body)
    )
    return _verify(message, ((match["kid"], match["mac"]),), keys)


def _verify(message: bytes, signatures: Iterable[tuple[str, str]], keys: Mapping[str, bytes]):
    known = False
    for kid, value in signatures:
        key = keys.get(kid)
        if key is None:
            continue
        known = True
        if hmac.compare_digest(mac(key, message), value):
            return kid
    if not known:
        raise AuthError("unknown_key", "signed with a key this side does not hold")
    raise AuthError("bad_signature", "the signature does not match")


# --- replay ----------------------------------------------------------------------------------


class NonceMemory:
    """Nonces seen within the replay window (in memory: one agent process, one node).

    A nonce is remembered until its timestamp leaves the window, after which check_clock refuses
    the request anyway; expired ones are dropped once per window. Only requests that verified
    are remembered, so only key holders can fill it; `capacity` still bounds it, refusing
    rather than forgetting when full."""

    def __init__(self, *, skew: int = MAX_CLOCK_SKEW, capacity: int = 100_000) -> None:
        self.skew = skew
        self.capacity = capacity
        self._expiry: dict[str, float] = {}
        self._pruned_at = float("-inf")
        self._lock = threading.Lock()

    def remember(self, nonce: str, ts: int, *, now: float | None = None) -> None:
        """Raise AuthError("replayed") when the nonce was seen in the window."""
        current = time.time() if now is None else now
        with self._lock:
            if current - self._pruned_at > self.skew or len(self._expiry) >= self.capacity:
                self._expiry = {n: t for n, t in self._expiry.items() if t >= current}
                self._pruned_at = current
            if nonce in self._expiry:
                raise AuthError("replayed", "this nonce was already used")
            if len(self._expiry) >= self.capacity:
                raise AuthError("busy", "too many requests within the replay window")
            self._expiry[nonce] = ts + self.skew

    def __len__(self) -> int:
        return len(self._expiry)
