"""The authentication scheme's pure parts (nodeagent.auth): keys, messages, clock, replay."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from nodeagent import auth

MASTER = b"unit-test-master-key-0123456789abcdef"


def key(node: str, cluster: str = "prod", master: bytes = MASTER) -> bytes:
    return auth.derive_node_key(master, cluster=cluster, node=node)


def test_a_node_key_is_hmac_of_the_master_over_cluster_and_node():
    expected = hmac.new(MASTER, b"nicportal agent key v1\0prod\0n1", hashlib.sha256).digest()
    assert key("n1") == expected


def test_keys_differ_by_node_cluster_and_master():
    keys = {
        key("n1"),
        key("n2"),
        key("n1", cluster="staging"),
        key("n1", master=MASTER + b"x"),
        # The NUL separator keeps ("ab", "c") and ("a", "bc") apart.
        key("c", cluster="ab"),
        key("bc", cluster="a"),
    }
    assert len(keys) == 6


def test_an_empty_master_is_refused():
    with pytest.raises(ValueError):
        auth.derive_node_key(b"", cluster="prod", node="n1")


def test_a_key_id_names_a_key_without_revealing_it():
    kid = auth.key_id(key("n1"))
    assert len(kid) == auth.KEY_ID_HEX and kid not in key("n1").hex()
    assert kid != auth.key_id(key("n2"))


def test_node_keys_round_trip_as_hex_and_anything_else_is_refused():
    assert auth.parse_node_key(auth.format_node_key(key("n1")) + "\n") == key("n1")
    for bad in ("", "zz" * 32, "ab" * 31, "ab" * 33):
        with pytest.raises(ValueError):
            auth.parse_node_key(bad)


def sign(**overrides):
    arguments = dict(direction=auth.AGENT_TO_PORTAL, method="POST", path="/h/", node="n1")
    arguments.update(overrides)
    keys = arguments.pop("keys", [key("n1")])
    return auth.sign_request(keys, body=b'{"node":"n1"}', now=1_000_000, **arguments)


def verify(header: str, *, keys=None, now=1_000_000, body=b'{"node":"n1"}', **overrides):
    arguments = dict(direction=auth.AGENT_TO_PORTAL, method="POST", path="/h/")
    arguments.update(overrides)
    keys = keys or {auth.key_id(key("n1")): key("n1")}
    request = auth.parse_authorization(header)
    return auth.verify_request(request, keys, body=body, now=now, **arguments)


def test_a_signed_request_verifies_and_names_its_key():
    header, request = sign()
    assert verify(header) == auth.key_id(key("n1"))
    assert request.node == "n1" and len(request.nonce) == auth.NONCE_HEX


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"body": b'{"node":"n2"}'}, "bad_signature"),
        ({"path": "/other/"}, "bad_signature"),
        ({"method": "GET"}, "bad_signature"),
        ({"authority": "10.0.0.1:9550"}, "bad_signature"),
        ({"direction": auth.PORTAL_TO_AGENT}, "bad_signature"),
        ({"keys": {auth.key_id(key("n2")): key("n2")}}, "unknown_key"),
        ({"now": 1_000_000 + auth.MAX_CLOCK_SKEW + 1}, "clock_skew"),
        ({"now": 1_000_000 - auth.MAX_CLOCK_SKEW - 1}, "clock_skew"),
    ],
)
def test_any_change_to_what_was_signed_fails_verification(change, code):
    header, _ = sign()
    with pytest.raises(auth.AuthError) as raised:
        verify(header, **change)
    assert raised.value.code == code


def test_the_clock_window_is_inclusive_of_the_allowed_skew():
    header, _ = sign()
    assert verify(header, now=1_000_000 + auth.MAX_CLOCK_SKEW)
    assert verify(header, now=1_000_000 - auth.MAX_CLOCK_SKEW)


def test_a_key_id_of_a_known_key_with_a_forged_mac_is_a_bad_signature():
    header, _ = sign()
    forged = header[:-64] + ("0" * 64)
    with pytest.raises(auth.AuthError) as raised:
        verify(forged)
    assert raised.value.code == "bad_signature"


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Bearer abc",
        f"{auth.SCHEME} node=N1,ts=1,nonce={'a' * 32},sig={'b' * 16}:{'c' * 64}",
        f"{auth.SCHEME} node=n1,ts=-1,nonce={'a' * 32},sig={'b' * 16}:{'c' * 64}",
        f"{auth.SCHEME} node=n1,ts=1,nonce={'a' * 31},sig={'b' * 16}:{'c' * 64}",
        f"{auth.SCHEME} node=n1,ts=1,nonce={'a' * 32},sig="
        + ";".join([f"{'b' * 16}:{'c' * 64}"] * 5),
        f"{auth.SCHEME} node=n1,ts=1,nonce={'a' * 32},sig={'b' * 16}:{'c' * 64},extra=1",
        auth.SCHEME + " " + "x" * 2000,
    ],
)
def test_malformed_headers_are_refused_before_any_mac_is_computed(header):
    with pytest.raises(auth.AuthError) as raised:
        auth.parse_authorization(header)
    assert raised.value.code in {"missing", "wrong_scheme", "malformed"}


def test_an_answer_signature_is_bound_to_the_request_nonce_status_etag_and_body():
    node_key = key("n1")
    keys = {auth.key_id(node_key): node_key}
    answer = dict(node="n1", nonce="a" * 32, status=200, etag='"e1"', body=b"{}")
    signature = auth.sign_answer(node_key, **answer)
    assert auth.verify_answer(signature, keys, **answer)
    for change in ({"nonce": "b" * 32}, {"status": 304}, {"etag": '"e2"'}, {"body": b"[]"}):
        with pytest.raises(auth.AuthError):
            auth.verify_answer(signature, keys, **{**answer, **change})
    with pytest.raises(auth.AuthError) as raised:
        auth.verify_answer(None, keys, **answer)
    assert raised.value.code == "unsigned"


def test_a_request_signature_is_never_a_valid_answer_signature():
    node_key = key("n1")
    header, request = sign()
    kid, value = request.signatures[0]
    with pytest.raises(auth.AuthError):
        auth.verify_answer(
            f"{kid}:{value}",
            {kid: node_key},
            node="n1",
            nonce=request.nonce,
            status=200,
            etag="",
            body=b"",
        )


def test_the_nonce_memory_refuses_a_replay_within_the_window_and_forgets_after_it():
    memory = auth.NonceMemory(skew=120)
    memory.remember("a" * 32, 1_000, now=1_000)
    with pytest.raises(auth.AuthError) as raised:
        memory.remember("a" * 32, 1_000, now=1_100)
    assert raised.value.code == "replayed"
    memory.remember("b" * 32, 1_300, now=1_300)  # prunes "a": its timestamp left the window
    assert len(memory) == 1


def test_a_full_nonce_memory_refuses_rather_than_forgets():
    memory = auth.NonceMemory(skew=120, capacity=2)
    memory.remember("a" * 32, 1_000, now=1_000)
    memory.remember("b" * 32, 1_000, now=1_000)
    with pytest.raises(auth.AuthError) as raised:
        memory.remember("c" * 32, 1_000, now=1_001)
    assert raised.value.code == "busy"
    with pytest.raises(auth.AuthError):
        memory.remember("a" * 32, 1_000, now=1_001)  # still remembered


@pytest.mark.parametrize(
    ("host", "port", "expected"),
    [
        ("10.0.0.1", 9550, "10.0.0.1:9550"),
        ("::ffff:10.0.0.1", 9550, "10.0.0.1:9550"),
        ("fd00::1", 9550, "[fd00::1]:9550"),
    ],
)
def test_an_authority_is_written_as_the_portal_writes_agent_urls(host, port, expected):
    assert auth.authority(host, port) == expected
