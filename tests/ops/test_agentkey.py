"""`manage.py agentkey`: node keys for agents that hold their own key only, and key ids."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from nodeagent import auth

MASTER = "agentkey-tests-master-0123456789abcdef"
PREVIOUS = "agentkey-tests-previous-0123456789abcd"


@pytest.fixture
def master(settings):
    settings.AGENT_MASTER_KEY = MASTER
    settings.AGENT_MASTER_KEY_PREVIOUS = ""
    settings.CLUSTER_NAME = "prod"


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("agentkey", *args, stdout=out)
    return out.getvalue()


def test_it_prints_the_node_key_the_portal_derives(master):
    expected = auth.derive_node_key(MASTER.encode(), cluster="prod", node="n1")
    assert auth.parse_node_key(run("n1")) == expected


def test_several_nodes_get_one_line_each_and_different_keys(master):
    lines = dict(line.split() for line in run("n1", "n2").splitlines())
    assert set(lines) == {"n1", "n2"} and lines["n1"] != lines["n2"]


def test_ids_name_the_current_and_previous_keys_without_printing_them(master, settings):
    settings.AGENT_MASTER_KEY_PREVIOUS = PREVIOUS
    output = run("n1", "--ids")
    current = auth.derive_node_key(MASTER.encode(), cluster="prod", node="n1")
    previous = auth.derive_node_key(PREVIOUS.encode(), cluster="prod", node="n1")
    assert output.strip() == f"n1 current={auth.key_id(current)} previous={auth.key_id(previous)}"
    assert current.hex() not in output and previous.hex() not in output


def test_it_refuses_without_a_master_or_with_a_bad_node_name(master, settings):
    with pytest.raises(CommandError, match="not a Kubernetes node name"):
        run("Bad_Node")
    settings.AGENT_MASTER_KEY = ""
    with pytest.raises(CommandError, match="NICPORTAL_AGENT_MASTER_KEY"):
        run("n1")
