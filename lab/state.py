"""The lab's state directory: what `up` made, so that `down` and `status` can find it.

Layout of `<state dir>` (default `<repo>/var/lab/<name>/`, or `$NICPORTAL_LAB_DIR/<name>/`):
`lab.json` (name, ports, tokens, component versions, nodes), `kubeconfig` (admin),
`portal.kubeconfig` (the portal's ServiceAccount), `pki/`
(CA, API server certificate, service-account keys, token file), `etcd/` (its data),
`agent-master-key` (the portal's master key), `agent-key-<node>` (each agent's own node key,
derived from it), `daemon.pid`, `pids.json` (agent pids), `ready`, `daemon.log`, `etcd.log`,
`kube-apiserver.log`, `agent-<node>.log`.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
# The portal's NICPORTAL_CLUSTER_NAME for a lab (`up --cluster-name` gives another, for a
# second lab registered in the same portal): part of every node key's derivation.
CLUSTER_NAME = "lab"


DEFAULT_NAME = "demo"


def default_name() -> str:
    """The lab the CLI acts on without --name: $NICPORTAL_LAB_NAME (what `make run` used)."""
    return os.environ.get("NICPORTAL_LAB_NAME") or DEFAULT_NAME


def load_run_env() -> dict[str, str]:
    """Take what `make run` recorded in var/run.env (NICPORTAL_LAB_NAME, NICPORTAL_LAB_DIR…) for
    every variable this process's environment does not set, as the portal's entry points do.

    The file is `NAME='value'` lines in POSIX shell quoting, written by the portal's
    nicportal/runenv.py; the lab reads it with shlex rather than importing the portal (the lab
    runs without Django). NICPORTAL_RUN_ENV names another file, or none when empty."""
    if "NICPORTAL_RUN_ENV" in os.environ:
        chosen = os.environ["NICPORTAL_RUN_ENV"].strip()
        path = Path(chosen) if chosen else None
    else:
        path = Path(os.environ.get("NICPORTAL_VAR_DIR") or REPO_ROOT / "var") / "run.env"
    try:
        text = path.read_text() if path else ""
    except FileNotFoundError:
        return {}
    added = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        name, equals, value = words[0].partition("=") if len(words) == 1 else ("", "", "")
        if equals and name.isidentifier() and name not in os.environ:
            added[name] = os.environ[name] = value
    return added


def state_root() -> Path:
    return Path(os.environ.get("NICPORTAL_LAB_DIR") or REPO_ROOT / "var" / "lab")


def state_dir(name: str) -> Path:
    return state_root() / name


@dataclass
class LabState:
    directory: Path
    data: dict[str, Any]

    @classmethod
    def load(cls, directory: Path) -> LabState:
        return cls(directory, json.loads((directory / "lab.json").read_text()))

    def save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / "lab.json"
        path.write_text(json.dumps(self.data, indent=2))

    @property
    def cluster_name(self) -> str:
        """The cluster name the lab's agent keys are derived with (the portal's name for it)."""
        return self.data.get("cluster_name") or CLUSTER_NAME

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "kubeconfig"

    @property
    def portal_kubeconfig(self) -> Path:
        """The portal's ServiceAccount token with the shipped RBAC (written by the daemon)."""
        return self.directory / "portal.kubeconfig"

    @property
    def pki_dir(self) -> Path:
        return self.directory / "pki"

    @property
    def agent_master_key_file(self) -> Path:
        return self.directory / "agent-master-key"

    def agent_key_file(self, node: str) -> Path:
        return self.directory / f"agent-key-{node}"

    @property
    def pid_file(self) -> Path:
        return self.directory / "daemon.pid"

    @property
    def pids_file(self) -> Path:
        return self.directory / "pids.json"

    @property
    def ready_file(self) -> Path:
        return self.directory / "ready"

    @property
    def log_file(self) -> Path:
        return self.directory / "daemon.log"

    def write_pids(self, pids: dict[str, int]) -> None:
        tmp = self.pids_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(pids))
        tmp.replace(self.pids_file)

    def read_pids(self) -> dict[str, int]:
        try:
            return json.loads(self.pids_file.read_text())
        except (OSError, ValueError):
            return {}

    def daemon_pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def status(self) -> dict[str, Any]:
        """The `status --json` document."""
        return {
            "name": self.data["name"],
            "api_url": self.data["api_url"],
            "kubeconfig": str(self.kubeconfig),
            "portal_kubeconfig": str(self.portal_kubeconfig),
            "cluster_name": self.cluster_name,
            "agent_master_key_file": str(self.agent_master_key_file),
            "nodes": [
                {
                    "name": node["name"],
                    "netns": node["netns"],
                    "internal_ip": node["internal_ip"],
                    "agent_url": f"http://127.0.0.1:{node['agent_port']}",
                    "host_device": node.get("host_device", ""),
                    "multus": node.get("multus", ""),
                }
                for node in self.data["nodes"]
            ],
        }
