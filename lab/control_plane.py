"""The lab's control plane: the real etcd and kube-apiserver, on 127.0.0.1 only.

`prepare()` (run by `lab up`, before the daemon starts) writes what the servers and the clients
need into `<state dir>/pki/`: a CA, the API server's certificate (127.0.0.1 and localhost), the
service-account signing key pair and a static token file with one identity per actor:

| token file user | groups          | used by                                              |
|-----------------|-----------------|------------------------------------------------------|
| `lab-admin`     | system:masters  | `kubeconfig` (tests, kubectl, the lab's bootstrap)   |
| `lab-kubelet`   | system:masters  | the lab kubelet (it also plays the scheduler)        |
| `multus`        | -               | the Multus 3.9 the lab plays (lab/multus.py)          |

`ControlPlane.start()` (in the daemon) runs etcd and kube-apiserver as children of the daemon
(one process group, so `down` ends them with it), waits for `/readyz`, then bootstraps what the
lab needs: the `nicportal` namespace, the NetworkAttachmentDefinition CRD (until it is served),
Multus' RBAC (its ServiceAccount `kube-system/multus`, whose token real Multus uses on every
node, see lab/cni.py), the portal's RBAC from `deploy/kubernetes/rbac.yaml` with a token of its
ServiceAccount (`portal.kubeconfig`: the portal runs with exactly the shipped permissions), the
Nodes, the agent DaemonSet (apps/v1, never reconciled) and the agent pods it controls (their
ownerReferences name it with its uid; the lab kubelet marks them Running).

There is no controller-manager and no scheduler: the lab kubelet schedules (by nodeSelector and
required node affinity) and confirms deletions itself. Without the service-account controller no
`default` ServiceAccount appears in new namespaces, so the ServiceAccount admission plugin is off;
every other default admission plugin (NamespaceLifecycle, ...) is on, and RBAC authorizes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import socket
import subprocess
from pathlib import Path
from typing import Any

import yaml

from lab import components
from lab.api import Api
from lab.state import LabState

log = logging.getLogger("lab.control_plane")

MANIFESTS = Path(__file__).resolve().parent / "manifests"
# The portal's identity as the product ships it: its ServiceAccount, ClusterRole and binding.
PORTAL_RBAC = Path(__file__).resolve().parent.parent / "deploy" / "kubernetes" / "rbac.yaml"
PORTAL_SERVICE_ACCOUNT = ("nicportal", "nicportal-portal")
PORTAL_TOKEN_SECONDS = 30 * 24 * 3600
MULTUS_SERVICE_ACCOUNT = ("kube-system", "multus")
SERVICE_CIDR = "10.96.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
IDENTITIES = {  # token name -> (user, groups)
    "admin": ("lab-admin", "system:masters"),
    "kubelet": ("lab-kubelet", "system:masters"),
    "multus": ("multus", ""),
}


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def prepare(state: LabState) -> None:
    """PKI, tokens and kubeconfigs of a new lab (idempotent per state dir)."""
    pki = state.pki_dir
    pki.mkdir(parents=True, exist_ok=True)
    pki.chmod(0o700)
    if not (pki / "ca.crt").exists():
        ec = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes")
        _openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "3650",
                 "-subj", "/CN=nicportal-lab-ca", cwd=pki)  # fmt: skip
        (pki / "apiserver.ext").write_text(
            "subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
            "DNS:kubernetes.default.svc,IP:10.96.0.1\n"
            "basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
            "extendedKeyUsage=serverAuth\nauthorityKeyIdentifier=keyid,issuer\n"
        )
        _openssl("req", *ec, "-keyout", "apiserver.key", "-out", "apiserver.csr",
                 "-subj", "/CN=kube-apiserver", cwd=pki)  # fmt: skip
        _openssl("x509", "-req", "-in", "apiserver.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", "apiserver.crt", "-days", "3650",
                 "-extfile", "apiserver.ext", cwd=pki)  # fmt: skip
        _openssl("genrsa", "-out", "sa.key", "2048", cwd=pki)
        _openssl("rsa", "-in", "sa.key", "-pubout", "-out", "sa.pub", cwd=pki)
    tokens = state.data.setdefault("tokens", {})
    for name in IDENTITIES:
        tokens.setdefault(name, secrets.token_urlsafe(32))
    state.save()
    lines = []
    for name, (user, groups) in IDENTITIES.items():
        lines.append(f'{tokens[name]},{user},{user},"{groups}"' if groups else
                     f"{tokens[name]},{user},{user}")  # fmt: skip
    (pki / "tokens.csv").write_text("\n".join(lines) + "\n")
    (pki / "tokens.csv").chmod(0o600)
    write_kubeconfig(state.kubeconfig, state, tokens["admin"], user="lab-admin")


def write_kubeconfig(path: Path, state: LabState, token: str, *, user: str) -> None:
    """A kubeconfig for the official client and kubectl: HTTPS with the lab CA, a bearer token."""
    import base64

    name = f"nplab-{state.data['name']}"
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": state.data["api_url"],
                    "certificate-authority-data": base64.b64encode(
                        (state.pki_dir / "ca.crt").read_bytes()
                    ).decode(),
                },
            }
        ],
        "users": [{"name": user, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    path.chmod(0o600)


def api_for(state: LabState, identity: str) -> Api:
    return Api(state.data["api_url"], state.data["tokens"][identity], state.pki_dir / "ca.crt")


def load_manifests(path: str | Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all((MANIFESTS / path).read_text()) if doc]


class ControlPlane:
    def __init__(self, state: LabState) -> None:
        self.state = state
        self.processes: list[asyncio.subprocess.Process] = []

    def etcd_command(self) -> list[str]:
        data = self.state.data
        client = f"http://127.0.0.1:{data['etcd_port']}"
        peer = f"http://127.0.0.1:{data['etcd_peer_port']}"
        return [
            str(components.binary("etcd")),
            "--name", "lab",
            "--data-dir", str(self.state.directory / "etcd"),
            "--listen-client-urls", client, "--advertise-client-urls", client,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"lab={peer}",
            "--log-level", "warn",
            # A lab's data dies with it: fsync only slows a shared disk down.
            "--unsafe-no-fsync",
        ]  # fmt: skip

    def apiserver_command(self) -> list[str]:
        data, pki = self.state.data, self.state.pki_dir
        return [
            str(components.binary("kube-apiserver")),
            f"--etcd-servers=http://127.0.0.1:{data['etcd_port']}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={data['api_port']}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--token-auth-file={pki / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--disable-admission-plugins=ServiceAccount",
            # One client machine: fairness queues and endpoint reconciling only cost CPU.
            "--enable-priority-and-fairness=false",
            "--endpoint-reconciler-type=none",
            "--profiling=false",
            f"--cert-dir={pki}",
        ]

    async def _spawn(self, name: str, command: list[str]) -> asyncio.subprocess.Process:
        log_file = (self.state.directory / f"{name}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.DEVNULL, stdout=log_file, stderr=log_file
        )
        log_file.close()
        self.processes.append(proc)
        return proc

    async def start(self, timeout: float = 90.0) -> None:
        # kube-apiserver retries a taken port for a long while before it gives up: say it now.
        for key in ("api_port", "etcd_port", "etcd_peer_port"):
            port = self.state.data[key]
            with socket.socket() as probe:
                try:
                    probe.bind(("127.0.0.1", port))
                except OSError as exc:
                    raise RuntimeError(f"127.0.0.1:{port} ({key}) is taken: {exc}") from exc
        etcd = await self._spawn("etcd", self.etcd_command())
        apiserver = await self._spawn("kube-apiserver", self.apiserver_command())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with api_for(self.state, "admin") as api:
            while True:
                for name, proc in (("etcd", etcd), ("kube-apiserver", apiserver)):
                    if proc.returncode is not None:
                        raise RuntimeError(
                            f"{name} exited with {proc.returncode}: see"
                            f" {self.state.directory / name}.log"
                        )
                with contextlib.suppress(OSError, asyncio.TimeoutError):
                    status, _ = await api.request("GET", "/readyz")
                    if status == 200:
                        break
                if loop.time() > deadline:
                    raise RuntimeError(f"kube-apiserver not ready after {timeout:.0f} s")
                await asyncio.sleep(0.25)
            log.info("kube-apiserver ready on %s", self.state.data["api_url"])
            await self.bootstrap(api)

    async def bootstrap(self, api: Api) -> None:
        from lab import kube_api

        await api.wait_for("/api/v1/namespaces/default")
        await api.wait_for("/api/v1/namespaces/kube-system")  # Multus' ServiceAccount lives there
        await api.create(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "nicportal"}},
            exist_ok=True,
        )
        for obj in load_manifests("nad-crd.yaml") + load_manifests("multus-rbac.yaml"):
            await api.create(obj, exist_ok=True)
        await api.wait_for("/apis/k8s.cni.cncf.io/v1/network-attachment-definitions")
        for obj in load_manifests(PORTAL_RBAC):
            await api.create(obj, exist_ok=True)
        namespace, account = PORTAL_SERVICE_ACCOUNT
        token = await api.call(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": PORTAL_TOKEN_SECONDS},
            },
        )
        write_kubeconfig(
            self.state.portal_kubeconfig,
            self.state,
            token["status"]["token"],
            user=f"system:serviceaccount:{namespace}:{account}",
        )
        # The agent DaemonSet: its uid is what makes the agent pods agents to the portal. No
        # controller-manager runs, so nothing reconciles it; the lab daemon runs the agents.
        daemonset = await api.create(kube_api.agent_daemonset_object(), exist_ok=True)
        if not daemonset.get("metadata", {}).get("uid"):  # it existed (a restarted daemon)
            daemonset = await api.get(
                f"/apis/apps/v1/namespaces/{kube_api.AGENT_NAMESPACE}/daemonsets/"
                f"{kube_api.AGENT_DAEMONSET}"
            )
        for node in self.state.data["nodes"]:
            await api.create(
                kube_api.node_object(
                    node["name"],
                    node["internal_ip"],
                    node.get("labels"),
                    # The lab kubelet answers for the API server's release.
                    kubelet_version=components.COMPONENTS["kube-apiserver"].version,
                ),
                exist_ok=True,
            )
            # Controlled by the DaemonSet; the lab kubelet marks it Running with pod IP = host IP
            # = kube_api.AGENT_HOST_IP, one of the Node's addresses (the status subresource).
            pod = kube_api.agent_pod_object(
                node["name"], node["agent_port"], daemonset["metadata"]["uid"]
            )
            del pod["status"]  # the API server ignores a status on create: the kubelet writes it
            await api.create(pod, exist_ok=True)

    async def multus_token(self, api: Api) -> str:
        """A token of Multus' ServiceAccount (kube-system/multus), for the nodes' kubeconfig."""
        namespace, account = MULTUS_SERVICE_ACCOUNT
        token = await api.call(
            "POST",
            f"/api/v1/namespaces/{namespace}/serviceaccounts/{account}/token",
            {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"expirationSeconds": PORTAL_TOKEN_SECONDS},
            },
        )
        return str(token["status"]["token"])

    async def stop(self) -> None:
        for proc in reversed(self.processes):  # the API server first, etcd last
            if proc.returncode is None:
                proc.terminate()
                try:
                    await asyncio.wait_for(proc.wait(), 5)
                except TimeoutError:
                    proc.kill()
