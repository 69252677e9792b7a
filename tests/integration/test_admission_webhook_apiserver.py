"""End to end on a real control plane: etcd and kube-apiserver (the builds the lab's components
step makes, lab/components), the shipped ValidatingWebhookConfiguration pointed at the webhook
server on 127.0.0.1 (gunicorn, TLS from `manage.py webhookcert`), kubectl, and the inventory in
the test database.

- `kubectl apply` of the seed's NAD (a `# comment`, `device: eth0`) is denied with NICPortal's
  reason; a dry run of it is denied too and records nothing;
- a NAD built by NICPortal (services.nads.apply, through the real API) is admitted;
- a pod taking a NIC another team reserved is denied, naming the team;
- with the webhook server down and failurePolicy Ignore, the seed's NAD applies.

The control plane is started here rather than through `python -m lab up`, which runs the same
binaries; see docs/WEBHOOK.md. Without those binaries on this machine the test is skipped with
the reason (they are built by `make test` once the lab's components are part of it).
"""

from __future__ import annotations

import base64
import glob
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.core.management import call_command

from inventory.choices import OwnershipState
from inventory.cluster import ClusterClient
from inventory.management.commands.webhookcert import make_ca, make_serving
from inventory.models import AdmissionRecord, TeamNamespace
from inventory.services import nads
from tests.factories import (
    make_cluster,
    make_interface,
    make_node,
    make_reservation,
    make_team,
    make_user,
)
from tests.ops.servers import database_url, free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"
COMPONENTS = Path(os.environ.get("NICPORTAL_LAB_COMPONENTS", "/var/cache/nicportal/components"))
KUBECTL = os.environ.get("KUBECTL", "kubectl")

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

CNI = {"host_device": {"version": "1.1.1", "supported_versions": ["0.3.1", "0.4.0", "1.0.0"]}}
NAD_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "network-attachment-definitions.k8s.cni.cncf.io"},
    "spec": {
        "group": "k8s.cni.cncf.io",
        "scope": "Namespaced",
        "names": {
            "plural": "network-attachment-definitions",
            "singular": "network-attachment-definition",
            "kind": "NetworkAttachmentDefinition",
            "shortNames": ["net-attach-def"],
        },
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "apiVersion": {"type": "string"},
                            "kind": {"type": "string"},
                            "metadata": {"type": "object"},
                            "spec": {
                                "type": "object",
                                "properties": {"config": {"type": "string"}},
                            },
                        },
                    }
                },
            }
        ],
    },
}
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


def binary(name: str) -> Path | None:
    found = sorted(glob.glob(str(COMPONENTS / name / "*" / name)))
    return Path(found[-1]) if found else None


@dataclass
class ControlPlane:
    url: str
    kubeconfig: Path
    ca: Path
    token: str


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory) -> Iterator[ControlPlane]:
    etcd, apiserver = binary("etcd"), binary("kube-apiserver")
    if etcd is None or apiserver is None:
        pytest.skip(f"no etcd / kube-apiserver build under {COMPONENTS} (lab components)")
    work = tmp_path_factory.mktemp("control-plane")
    ca_pem, ca_key = make_ca()
    cert, key = make_serving(ca_pem, ca_key, names=["localhost"], ips=["127.0.0.1"])
    ca = _write(work / "ca.crt", ca_pem)
    _write(work / "apiserver.crt", cert)
    _write(work / "apiserver.key", key)
    sa_key = ec.generate_private_key(ec.SECP256R1())
    _write(
        work / "sa.key",
        sa_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write(
        work / "sa.pub",
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
    )
    token = base64.urlsafe_b64encode(os.urandom(24)).decode()
    _write(work / "tokens.csv", f'{token},admin,admin,"system:masters"\n'.encode())
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    logs = (work / "etcd.log").open("wb"), (work / "kube-apiserver.log").open("wb")
    processes = [
        subprocess.Popen(
            [
                str(etcd),
                f"--data-dir={work / 'etcd'}",
                f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
                f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
                f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
                f"--initial-cluster=default=http://127.0.0.1:{peer_port}",
                "--log-level=warn",
                "--unsafe-no-fsync",
            ],
            stdout=logs[0],
            stderr=subprocess.STDOUT,
        )
    ]
    processes.append(
        subprocess.Popen(
            [
                str(apiserver),
                f"--etcd-servers=http://127.0.0.1:{etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={work / 'apiserver.crt'}",
                f"--tls-private-key-file={work / 'apiserver.key'}",
                f"--token-auth-file={work / 'tokens.csv'}",
                "--authorization-mode=RBAC",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={work / 'sa.pub'}",
                f"--service-account-signing-key-file={work / 'sa.key'}",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--disable-admission-plugins=ServiceAccount",
                "--enable-priority-and-fairness=false",
                "--endpoint-reconciler-type=none",
                f"--cert-dir={work}",
            ],
            stdout=logs[1],
            stderr=subprocess.STDOUT,
        )
    )
    url = f"https://127.0.0.1:{api_port}"
    kubeconfig = work / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "e2e",
                        "cluster": {
                            "server": url,
                            "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                        },
                    }
                ],
                "users": [{"name": "admin", "user": {"token": token}}],
                "contexts": [{"name": "e2e", "context": {"cluster": "e2e", "user": "admin"}}],
                "current-context": "e2e",
            }
        )
    )
    plane = ControlPlane(url, kubeconfig, ca, token)
    try:
        deadline = time.monotonic() + 120
        while not _ready(plane):
            for process in processes:
                assert process.poll() is None, (work / "kube-apiserver.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "kube-apiserver did not become ready"
            time.sleep(0.5)
        kubectl(plane, "apply", "-f", "-", stdin=json.dumps(NAD_CRD))
        crd = "crd/network-attachment-definitions.k8s.cni.cncf.io"
        kubectl(plane, "wait", "--for=condition=Established", "--timeout=60s", crd)
        kubectl(plane, "create", "namespace", "ml")
        yield plane
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)
        for log in logs:
            log.close()


def _ready(plane: ControlPlane) -> bool:
    try:
        answer = requests.get(
            f"{plane.url}/readyz",
            headers={"Authorization": f"Bearer {plane.token}"},
            verify=plane.ca,
            timeout=10,
        )
    except requests.RequestException:
        return False
    return answer.status_code == 200


def kubectl(
    plane: ControlPlane, *args: str, stdin: str = "", check: bool = True
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [KUBECTL, f"--kubeconfig={plane.kubeconfig}", *args],
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
            self.process.wait(timeout=15)


@pytest.fixture
def inventory(settings, control_plane):
    settings.CLUSTER_NAME = "e2e"
    settings.MULTUS_VERSION = "3.9"
    settings.KUBECONFIG = str(control_plane.kubeconfig)
    cluster = make_cluster(name="e2e", multus_version="3.9")
    node = make_node(cluster, name="node-a", cni=CNI, labels={"kubernetes.io/hostname": "node-a"})
    make_interface(
        node,
        name="eth0",
        state=OwnershipState.SYSTEM,
        reason="carries the default route and the node's InternalIP",
    )
    free = make_interface(node, name="eth1")
    taken = make_interface(node, name="eth2")
    platform, ml = make_team("platform"), make_team("ml")
    TeamNamespace.objects.create(team=ml, pattern="ml")
    make_reservation(taken, platform)
    taken.state, taken.holder = OwnershipState.RESERVED, "team platform"
    taken.save()
    return {"free": free, "taken": taken, "platform": platform}


@pytest.fixture
def webhook(control_plane, inventory, tmp_path) -> Iterator[Webhook]:
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
        "NICPORTAL_CLUSTER_NAME": "e2e",
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
        hook["clientConfig"] = {"url": f"https://127.0.0.1:{port}/validate", "caBundle": bundle}
    kubectl(control_plane, "apply", "-f", "-", stdin=json.dumps(configuration))
    try:
        yield server
    finally:
        server.stop()
        kubectl(
            control_plane,
            "delete",
            "validatingwebhookconfiguration",
            "nicportal",
            "--ignore-not-found",
        )
        kubectl(control_plane, "delete", "net-attach-def", "--all", "-n", "default")


def test_the_seeds_nad_is_denied_with_nicportals_reason(control_plane, webhook):
    dry = kubectl(
        control_plane, "apply", "--dry-run=server", "-f", "-", stdin=SEED_NAD, check=False
    )
    assert dry.returncode != 0
    assert not AdmissionRecord.objects.exists()  # a dry run changes nothing
    result = kubectl(control_plane, "apply", "-f", "-", stdin=SEED_NAD, check=False)
    assert result.returncode != 0, result.stdout
    # A 422 Invalid: kubectl names the object and prints each cause as `field: message`.
    assert 'The NetworkAttachmentDefinition "macvlan-conf" is invalid' in result.stderr
    assert "spec.config: NICPortal CONFIG_INVALID_JSON: spec.config is not valid JSON" in (
        result.stderr
    )
    assert "(`# the uplink`)" in result.stderr and "Fix: Delete the comment" in result.stderr
    missing = kubectl(control_plane, "get", "net-attach-def", "macvlan-conf", check=False)
    assert missing.returncode != 0
    record = AdmissionRecord.objects.get()
    assert (record.name, record.codes, record.enforced) == (
        "macvlan-conf",
        "CONFIG_INVALID_JSON",
        True,
    )
    fixed = SEED_NAD.replace("      # the uplink\n", "")
    result = kubectl(control_plane, "apply", "-f", "-", stdin=fixed, check=False)
    assert result.returncode != 0 and "PRIMARY_NIC" in result.stderr
    assert "node-a/eth0 is the node's primary NIC" in result.stderr


def test_a_nad_built_by_nicportal_is_admitted(control_plane, webhook, inventory):
    (row,) = nads.apply(
        user=make_user(staff=True),
        namespace="default",
        name="fast",
        interface_ids=[inventory["free"].pk],
        client=ClusterClient(kubeconfig=str(control_plane.kubeconfig)),
    )
    got = json.loads(kubectl(control_plane, "get", "net-attach-def", "fast", "-o", "json").stdout)
    assert json.loads(got["spec"]["config"])["device"] == "eth1"
    assert row.in_cluster


def test_a_pod_taking_another_teams_reserved_nic_is_denied_naming_the_team(
    control_plane, webhook, inventory
):
    nads.apply(
        user=make_user(staff=True),
        namespace="default",
        name="taken",
        interface_ids=[inventory["taken"].pk],
        team=inventory["platform"],
        client=ClusterClient(kubeconfig=str(control_plane.kubeconfig)),
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
            "nodeSelector": {"kubernetes.io/hostname": "node-a"},
            "containers": [{"name": "main", "image": "busybox"}],
        },
    }
    result = kubectl(control_plane, "apply", "-f", "-", stdin=json.dumps(pod), check=False)
    assert result.returncode != 0, result.stdout
    assert 'admission webhook "pods.nicportal.io" denied the request' in result.stderr
    assert "DEVICE_RESERVED" in result.stderr and "reserved by team platform" in result.stderr
    assert "namespace ml belongs to team ml, not to team platform" in result.stderr


def test_with_the_webhook_down_and_ignore_applies_still_succeed(control_plane, webhook):
    webhook.stop()
    result = kubectl(control_plane, "apply", "-f", "-", stdin=SEED_NAD, check=False)
    assert result.returncode == 0, result.stderr
    kubectl(control_plane, "get", "net-attach-def", "macvlan-conf")
