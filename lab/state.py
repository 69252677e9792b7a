"""The lab's state directory: what `up` made, so that `down` and `status` can find it.

Layout of `<state dir>` (default `<repo>/var/lab/<name>/`, or `$NICPORTAL_LAB_DIR/<name>/`):
`lab.json` (name, ports, tokens, component versions, nodes), `kubeconfig` (admin),
`portal.kubeconfig` (the portal's ServiceAccount), `pki/`
(CA, API server certificate, service-account keys, token file), `etcd/` (its data),
`agent-token`, `daemon.pid`, `pids.json` (agent pids), `ready`, `daemon.log`, `etcd.log`,
`kube-apiserver.log`, `agent-<node>.log`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    def agent_token_file(self) -> Path:
        return self.directory / "agent-token"

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
            "agent_token_file": str(self.agent_token_file),
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
