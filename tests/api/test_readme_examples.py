"""The README's curl examples, run as written against the portal and the lab: what the README
promises automation authors is what the API does."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from knox.models import AuthToken

from inventory.models import NetworkAttachment, Reservation
from inventory.services import polling
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_examples() -> str:
    text = README.read_text()
    match = re.search(
        r"<!-- curl-examples -->\s*```sh\n(.*?)```\s*<!-- /curl-examples -->", text, re.S
    )
    assert match, "README has no curl-examples block"
    return match.group(1)


def test_the_readme_curl_examples_work_against_the_lab(lab, live_server, settings):
    lab.reset()
    settings.KUBECONFIG = str(lab.kubeconfig)
    settings.AGENT_TOKEN = lab.agent_token
    settings.CLUSTER_NAME = "lab"
    polling.sweep_inline(workers=4)
    user = make_user("demo", teams=[make_team("platform")])
    _, token = AuthToken.objects.create(user=user, expiry=None)

    script = readme_examples()
    # The reader's PORTAL and TOKEN lines point at their own portal; ours are the test's.
    lines = [ln for ln in script.splitlines() if not ln.startswith(("PORTAL=", "TOKEN="))]
    assert len(lines) < len(script.splitlines()), "the examples define PORTAL and TOKEN"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", "\n".join(lines)],
        env={"PATH": "/usr/bin:/bin", "PORTAL": live_server.url, "TOKEN": token},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    outputs = [json.loads(line) for line in result.stdout.splitlines() if line[:1] in "{["]

    free, reservation, rendered, applied, by_name, diagnosis = outputs
    assert {row["name"] for row in free["results"]} >= {"eth1", "eth2", "eth3"}
    assert all(row["state"] == "free" for row in free["results"])
    held = Reservation.objects.get(pk=reservation["id"])
    assert (held.interface.name, held.team.name, held.released_at) == ("eth2", "platform", None)
    assert rendered["ok"] is True and "host-device" in rendered["nads"][0]["yaml"]
    assert NetworkAttachment.objects.filter(name="fast-net", origin="portal").exists()
    nad = lab.custom.get_namespaced_custom_object(
        "k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions", "fast-net"
    )
    config = json.loads(nad["spec"]["config"])
    assert config["type"] == "host-device" and config["name"] == "fast-net"
    assert applied  # the apply answer is the list of stored NADs
    # eth3 is on node-a too: one NAD per node, each selecting its NIC by MAC.
    assert by_name["ok"] is True, by_name["findings"]
    assert [n["nodes"] for n in by_name["nads"]] == [["node-b"], ["node-c"]]
    assert all("hwaddr" in n["config"] for n in by_name["nads"])
    assert by_name["nads"][0]["config"]["ipam"]["routes"] == [
        {"dst": "198.51.100.0/24", "gw": "192.0.2.1"}
    ]
    assert diagnosis["code"] == "POD_NOT_FOUND"
    lab.reset()
