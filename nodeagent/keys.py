"""This node's key, read from a file (a mounted Secret or a host file) and re-read when it
changes, so that a key rotation needs no restart.

Two kinds of file (docs/agent-auth.md): `--key-file` holds this node's own key (64 hex digits,
from `manage.py agentkey NODE`): a node holding it can speak for itself only. `--master-key-file`
holds the portal's master key, from which the agent derives its node's key at start-up and on
every change of the file; simpler to deploy (one Secret for the whole DaemonSet) but whoever
reads that file on any node can derive every node's key.
"""

from __future__ import annotations

import os
import threading

from nodeagent.auth import derive_node_key, key_id, parse_node_key


class KeyFileError(Exception):
    pass


class NodeKey:
    def __init__(self, path: str, *, node: str, cluster: str, master: bool) -> None:
        self.path = path
        self.node = node
        self.cluster = cluster
        self.master = master
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._key = b""
        self._kid = ""
        self.current()  # fail at start-up, not on the first request

    @property
    def kind(self) -> str:
        return "master key" if self.master else "node key"

    def current(self) -> bytes:
        """This node's key; re-read when the file changed. Raises KeyFileError."""
        try:
            stat = os.stat(self.path)
        except OSError as error:
            raise KeyFileError(
                f"cannot read {self.kind} file {self.path}: {error.strerror}"
            ) from None
        stamp = (stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            if stamp != self._stamp:
                self._key = self._load()
                self._kid = key_id(self._key)
                self._stamp = stamp
            return self._key

    def keys(self) -> dict[str, bytes]:
        """key id -> key, as nodeagent.auth's verify functions take them."""
        key = self.current()
        return {self._kid: key}

    def _load(self) -> bytes:
        try:
            with open(self.path, "rb") as handle:
                text = handle.read().strip()
        except OSError as error:
            raise KeyFileError(f"cannot read {self.kind} file {self.path}: {error}") from None
        if not text:
            raise KeyFileError(f"{self.kind} file {self.path} is empty")
        if self.master:
            return derive_node_key(text, cluster=self.cluster, node=self.node)
        try:
            return parse_node_key(text.decode("ascii", errors="replace"))
        except ValueError as error:
            raise KeyFileError(f"{self.kind} file {self.path}: {error}") from None
