"""A real etcd and kube-apiserver on 127.0.0.1 for the tests that need the API server's own
watch semantics (resourceVersions, bookmarks, 410), which KMock does not have.

The binaries are the ones the lab's component cache holds (`$NICPORTAL_COMPONENT_CACHE`, default
/var/cache/nicportal/components: `<component>/<version>-<key>/<binary>`); without them the tests
that use this are skipped. TLS with a throw-away CA made by openssl, one static admin token, no
controller-manager and no scheduler (nothing here needs them).
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

CACHE = Path(os.environ.get("NICPORTAL_COMPONENT_CACHE") or "/var/cache/nicportal/components")


def _binary(component: str, name: str) -> Path | None:
    found = sorted((CACHE / component).glob(f"*/{name}"))
    return found[-1] if found and os.access(found[-1], os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


@dataclass
class ApiServer:
    url: str
    token: str
    ca: Path
    kubeconfig: Path
    etcd_url: str
    restart: Callable[[], None]

    def compact_etcd(self) -> int:
        """Compact etcd's history up to now (as the API server does every few minutes): a
        watch from an older resourceVersion is then answered 410. Returns the revision."""

        def call(path: str, body: dict) -> dict:
            request = urllib.request.Request(
                f"{self.etcd_url}{path}",
                data=json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                return json.load(answer)

        revision = int(call("/v3/kv/range", {"key": "AA=="})["header"]["revision"])
        call("/v3/kv/compaction", {"revision": str(revision), "physical": True})
        return revision


@pytest.fixture(scope="session")
def real_api_server(tmp_path_factory) -> Iterator[ApiServer]:
    etcd, apiserver = _binary("etcd", "etcd"), _binary("kube-apiserver", "kube-apiserver")
    if etcd is None or apiserver is None:
        pytest.skip(f"no etcd and kube-apiserver built in {CACHE} (the lab's component cache)")
    home = tmp_path_factory.mktemp("apiserver")
    ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
    _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
             "-subj", "/CN=test-ca", cwd=home)  # fmt: skip
    (home / "server.ext").write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
        "extendedKeyUsage=serverAuth\n"
    )
    _openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj",
             "/CN=kube-apiserver", cwd=home)  # fmt: skip
    _openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext",
             cwd=home)  # fmt: skip
    _openssl("genrsa", "-out", "sa.key", "2048", cwd=home)
    _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=home)
    token = secrets.token_urlsafe(24)
    (home / "tokens.csv").write_text(f'{token},admin,admin,"system:masters"\n')
    client_port, peer_port, api_port = _free_port(), _free_port(), _free_port()
    client, peer = f"http://127.0.0.1:{client_port}", f"http://127.0.0.1:{peer_port}"
    log = (home / "servers.log").open("ab")
    processes = [
        subprocess.Popen(
            [
                str(etcd),
                "--name",
                "test",
                "--data-dir",
                str(home / "etcd"),
                "--listen-client-urls",
                client,
                "--advertise-client-urls",
                client,
                "--listen-peer-urls",
                peer,
                "--initial-advertise-peer-urls",
                peer,
                "--initial-cluster",
                f"test={peer}",
                "--log-level",
                "warn",
                "--unsafe-no-fsync",
            ],
            stdout=log,
            stderr=log,
        ),  # fmt: skip
    ]
    apiserver_command = [
        str(apiserver), f"--etcd-servers={client}", "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1", f"--secure-port={api_port}",
        f"--tls-cert-file={home / 'server.crt'}",
        f"--tls-private-key-file={home / 'server.key'}",
        f"--token-auth-file={home / 'tokens.csv'}", "--authorization-mode=RBAC",
        "--service-account-issuer=https://kubernetes.default.svc",
        f"--service-account-key-file={home / 'sa.pub'}",
        f"--service-account-signing-key-file={home / 'sa.key'}",
        "--service-cluster-ip-range=10.96.0.0/16",
        "--disable-admission-plugins=ServiceAccount",
        "--enable-priority-and-fairness=false", "--endpoint-reconciler-type=none",
        "--profiling=false", f"--cert-dir={home}",
    ]  # fmt: skip
    processes.append(subprocess.Popen(apiserver_command, stdout=log, stderr=log))
    url = f"https://127.0.0.1:{api_port}"
    context = ssl.create_default_context(cafile=str(home / "ca.crt"))

    def wait_ready() -> None:
        deadline = time.monotonic() + 120
        while True:
            if any(p.poll() is not None for p in processes):
                raise RuntimeError(f"etcd or kube-apiserver exited: see {home / 'servers.log'}")
            try:
                request = urllib.request.Request(
                    f"{url}/readyz", headers={"Authorization": f"Bearer {token}"}
                )
                with urllib.request.urlopen(request, context=context, timeout=5) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"kube-apiserver not ready: see {home / 'servers.log'}")
            time.sleep(0.5)

    def restart() -> None:
        """A new kube-apiserver on the same etcd: its watch cache starts again from now."""
        processes[-1].terminate()
        processes[-1].wait(timeout=30)
        processes[-1] = subprocess.Popen(apiserver_command, stdout=log, stderr=log)
        wait_ready()

    try:
        wait_ready()
        kubeconfig = home / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "test",
                            "cluster": {
                                "server": url,
                                "certificate-authority": str(home / "ca.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "admin", "user": {"token": token}}],
                    "contexts": [{"name": "test", "context": {"cluster": "test", "user": "admin"}}],
                    "current-context": "test",
                }
            )
        )
        yield ApiServer(
            url=url,
            token=token,
            ca=home / "ca.crt",
            kubeconfig=kubeconfig,
            etcd_url=client,
            restart=restart,
        )
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        log.close()


NAD_CRD = Path(__file__).resolve().parents[2] / "lab" / "manifests" / "nad-crd.yaml"


@dataclass
class NadApi:
    """The real API server with the NetworkAttachmentDefinition CRD served."""

    kubeconfig: Path
    core: object  # kubernetes.client.CoreV1Api
    custom: object  # kubernetes.client.CustomObjectsApi

    def ensure_namespace(self, name: str) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.core.create_namespace({"metadata": {"name": name}})
        except ApiException as exc:
            if exc.status != 409:
                raise

    def has_nad(self, namespace: str, name: str) -> bool:
        from kubernetes.client.exceptions import ApiException

        try:
            self.custom.get_namespaced_custom_object(
                "k8s.cni.cncf.io", "v1", namespace, "network-attachment-definitions", name
            )
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True


@pytest.fixture(scope="session")
def nad_api(real_api_server) -> Iterator[NadApi]:
    """real_api_server with the NAD CRD (lab/manifests/nad-crd.yaml, as Multus installs it)."""
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    from kubernetes.client.exceptions import ApiException

    api = k8s_config.new_client_from_config(config_file=str(real_api_server.kubeconfig))
    for doc in yaml.safe_load_all(NAD_CRD.read_text()):
        if doc:
            try:
                k8s.ApiextensionsV1Api(api).create_custom_resource_definition(doc)
            except ApiException as exc:
                if exc.status != 409:
                    raise
    custom = k8s.CustomObjectsApi(api)
    deadline = time.monotonic() + 60
    while True:  # the CRD is served a moment after it is created
        try:
            custom.list_namespaced_custom_object(
                "k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions"
            )
            break
        except ApiException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.25)
    yield NadApi(kubeconfig=real_api_server.kubeconfig, core=k8s.CoreV1Api(api), custom=custom)
    api.close()
