"""The address an agent request is signed for is the one the agent's socket has: the URL's port,
or the scheme's own port when the URL names none (an agent checks the signature against its
socket's local address, nodeagent/http_api.py)."""

from __future__ import annotations

import pytest

from inventory.clients.agents import _target


@pytest.mark.parametrize(
    ("url", "authority"),
    [
        ("http://10.0.0.5:9750", "10.0.0.5:9750"),
        ("http://10.0.0.5", "10.0.0.5:80"),
        ("https://10.0.0.5", "10.0.0.5:443"),
        ("https://10.0.0.5:9750", "10.0.0.5:9750"),
        ("https://[fd00::5]", "[fd00::5]:443"),
        ("http://[fd00::5]:9750", "[fd00::5]:9750"),
    ],
)
def test_a_request_is_signed_for_the_port_the_agent_listens_on(url, authority):
    target = _target(url + "/v1/snapshot")

    assert target.authority == authority
    assert target.path == "/v1/snapshot"


def test_a_url_of_another_scheme_is_refused():
    assert _target("ftp://10.0.0.5/v1/snapshot") == ("bad agent URL: Not supported URL scheme ftp")
