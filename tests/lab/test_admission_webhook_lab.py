"""Acceptance on the lab's real control plane (kube-apiserver and etcd, `python -m lab up`): the
shipped ValidatingWebhookConfiguration registered with the lab's API server, pointed at the
webhook server on 127.0.0.1 (gunicorn over TLS with a certificate from `manage.py webhookcert`),
the inventory from a real sweep of the lab, and kubectl.

- `kubectl apply` of the seed's NAD (a `# comment`, `device: eth0`) is denied with NICPortal's
  reason; a server-side dry run of it is denied too and records nothing;
- a NAD built by NICPortal (services.nads.apply, as the portal's ServiceAccount) is admitted;
- a pod taking a NIC another team reserved is denied, naming the team;
- with the webhook server down and failurePolicy Ignore, the seed's NAD applies.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
import requests
import yaml
from django.core.management import call_command
from django.utils import timezone

from inventory.models import AdmissionRecord, Interface, TeamNamespace
from inventory.services import nads, reservations
from tests.factories import make_team, make_user
from tests.ops.servers import database_url, free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"
KUBECTL = os.environ.get("KUBECTL", "kubectl")

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SEED_NAD = """\
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: macvlan-conf
  namespace: default
spec:
  config: |
    {
      "cniVersion": "0.3.1",
      # the uplink
      "type": "host-device",
      "device": "eth0"
    }
"""


def kubectl(lab, *args: str, stdin: str = "", check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [KUBECTL, f"--kubeconfig={lab.kubeconfig}", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


@dataclass
class Webhook:
    process: subprocess.Popen
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)


@pytest.fixture
def inventory(lab_portal, settings):
    """The lab as a sweep sees it, team ml owning namespace ml, and node-b/eth2 reserved by
    team platform."""
    settings.MULTUS_VERSION = "3.9"
    platform, ml = make_team("platform"), make_team("ml")
    TeamNamespace.objects.create(team=ml, pattern="ml")
    staff = make_user(staff=True)
    taken = Interface.objects.get(node__name="node-b", name="eth2")
    reservations.reserve(
        interface_id=taken.pk,
        team=platform,
        user=staff,
        purpose="DPDK tests",
        expires_at=timezone.now() + timedelta(days=1),
    )
    free = Interface.objects.get(node__name="node-a", name="eth1")
    kubectl(lab_portal, "create", "namespace", "ml", check=False)  # kept across tests
    return {"lab": lab_portal, "free": free, "taken": taken, "platform": platform, "staff": staff}


@pytest.fixture
def webhook(inventory, tmp_path) -> Iterator[Webhook]:
    lab = inventory["lab"]
    tls = tmp_path / "tls"
    call_command("webhookcert", "--out", str(tls), "--ip", "127.0.0.1")
    port = free_port()
    log = tmp_path / "webhook.log"
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "NICPORTAL_WEBHOOK_TLS_DIR": str(tls),
        "NICPORTAL_WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        "NICPORTAL_WEBHOOK_WORKERS": "1",
        "NICPORTAL_WEBHOOK_TMP_DIR": str(tmp_path),
        "NICPORTAL_WEBHOOK_MODE": "enforce",
        "NICPORTAL_WEBHOOK_INDEX_MAX_AGE": "0",  # the test adds NADs between reviews
        "NICPORTAL_CLUSTER_NAME": "lab",
        "NICPORTAL_VAR_DIR": str(tmp_path / "var"),
        "PYTHONPATH": str(ROOT),
    }
    with log.open("w") as out:
        process = subprocess.Popen(
            [
                str(GUNICORN),
                "-c",
                "python:nicportal.webhook_gunicorn",
                "nicportal.wsgi:application",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Webhook(process, log)
    registered = False
    try:  # the server is stopped whatever happens from here on, a failed start included
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"https://127.0.0.1:{port}/healthz", verify=tls / "ca.crt", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert process.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the webhook server did not start"
                time.sleep(0.2)
        # The shipped configuration, with the URL of this server instead of the Service.
        configuration = yaml.safe_load(
            (ROOT / "deploy" / "kubernetes" / "webhook-configuration.yaml").read_text()
        )
        bundle = base64.b64encode((tls / "ca.crt").read_bytes()).decode()
        for hook in configuration["webhooks"]:
            hook["clientConfig"] = {
                "url": f"https://127.0.0.1:{port}/validate",
                "caBundle": bundle,
            }
        kubectl(lab, "apply", "-f", "-", stdin=json.dumps(configuration))
        registered = True
        yield server
    finally:
        server.stop()
        if registered:
            kubectl(
                lab, "delete", "validatingwebhookconfiguration", "nicportal", "--ignore-not-found"
            )
            kubectl(lab, "delete", "net-attach-def", "--all", "-n", "default")


def test_the_seeds_nad_is_denied_with_nicportals_reason(inventory, webhook):
    lab = inventory["lab"]
    dry = kubectl(lab, "apply", "--dry-run=server", "-f", "-", stdin=SEED_NAD, check=False)
    assert dry.returncode != 0 and "CONFIG_INVALID_JSON" in dry.stderr
    assert not AdmissionRecord.objects.exists()  # a dry run changes nothing
    result = kubectl(lab, "apply", "-f", "-", stdin=SEED_NAD, check=False)
    assert result.returncode != 0, result.stdout
    # A 422 Invalid: kubectl names the object and prints each cause as `field: message`.
    assert 'The NetworkAttachmentDefinition "macvlan-conf" is invalid' in result.stderr
    assert "spec.config: NICPortal CONFIG_INVALID_JSON: spec.config is not valid JSON" in (
        result.stderr
    )
    assert "(`# the uplink`)" in result.stderr and "Fix: Delete the comment" in result.stderr
    assert kubectl(lab, "get", "net-attach-def", "macvlan-conf", check=False).returncode != 0
    record = AdmissionRecord.objects.get()
    assert (record.name, record.codes, record.enforced) == (
        "macvlan-conf",
        "CONFIG_INVALID_JSON",
        True,
    )
    # Without the comment, what is left is the node's own uplink.
    fixed = SEED_NAD.replace("      # the uplink\n", "")
    result = kubectl(lab, "apply", "-f", "-", stdin=fixed, check=False)
    assert result.returncode != 0 and "NICPortal PRIMARY_NIC" in result.stderr
    assert "node-a/eth0 is the node's primary NIC" in result.stderr


def test_a_nad_built_by_nicportal_is_admitted(inventory, webhook):
    lab = inventory["lab"]
    (row,) = nads.apply(
        user=inventory["staff"],
        namespace="default",
        name="fast",
        interface_ids=[inventory["free"].pk],
    )
    got = json.loads(kubectl(lab, "get", "net-attach-def", "fast", "-o", "json").stdout)
    # Every lab node has an eth1: the builder selects node-a's by its MAC.
    assert json.loads(got["spec"]["config"])["hwaddr"] == inventory["free"].mac
    assert row.in_cluster and not AdmissionRecord.objects.exists()


def test_a_pod_taking_another_teams_reserved_nic_is_denied_naming_the_team(inventory, webhook):
    lab = inventory["lab"]
    nads.apply(
        user=inventory["staff"],
        namespace="default",
        name="taken",
        interface_ids=[inventory["taken"].pk],
        team=inventory["platform"],
    )
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": "trainer-0",
            "namespace": "ml",
            "annotations": {"k8s.v1.cni.cncf.io/networks": "default/taken@net1"},
        },
        "spec": {
            "nodeSelector": {"kubernetes.io/hostname": "node-b"},
            "containers": [{"name": "main", "image": "busybox"}],
        },
    }
    result = kubectl(lab, "apply", "-f", "-", stdin=json.dumps(pod), check=False)
    assert result.returncode != 0, result.stdout
    assert 'admission webhook "pods.nicportal.io" denied the request' in result.stderr
    assert "DEVICE_RESERVED" in result.stderr
    assert "node-b/eth2 is reserved by team platform" in result.stderr
    assert "namespace ml belongs to team ml, not to team platform" in result.stderr
    assert kubectl(lab, "get", "pod", "-n", "ml", "trainer-0", check=False).returncode != 0


def test_with_the_webhook_down_and_ignore_applies_still_succeed(inventory, webhook):
    lab = inventory["lab"]
    webhook.stop()
    result = kubectl(lab, "apply", "-f", "-", stdin=SEED_NAD, check=False)
    assert result.returncode == 0, result.stderr
    kubectl(lab, "get", "net-attach-def", "macvlan-conf")
