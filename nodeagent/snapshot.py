"""The versioned snapshot document and its ETag."""

from __future__ import annotations

import datetime
import hashlib
import json
import threading

from nodeagent.cni import CniProbe
from nodeagent.schema import SCHEMA_VERSION
from nodeagent.version import __version__


def rfc3339_now() -> str:
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def etag_of(document: dict) -> str:
    """Strong ETag over everything but ``collected_at``: an unchanged node keeps its ETag."""
    facts = {key: value for key, value in document.items() if key != "collected_at"}
    canonical = json.dumps(facts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return '"' + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32] + '"'


class SnapshotBuilder:
    """Builds ``(document, etag)`` from a collector (LocalCollector/NetnsCollector) and CNI.

    Collectors hand out the same facts object until the facts change (they never modify one
    they handed out), so the ETag, a SHA-256 over the canonical JSON of every fact, is computed
    again only when that object or the CNI facts changed: polling an unchanged node costs no
    hashing.
    """

    def __init__(self, *, node: str, netns: str | None, collector, cni: CniProbe) -> None:
        self.node = node
        self.netns = netns
        self.collector = collector
        self.cni = cni
        self._lock = threading.Lock()
        self._etag_of: tuple[dict, dict] | None = None  # (facts, cni) the ETag was computed for
        self._etag = ""

    def build(self) -> tuple[dict, str]:
        """Raises collector.CollectorError when the facts cannot be read."""
        facts = self.collector.facts()
        cni = self.cni.facts()
        document = {
            "schema_version": SCHEMA_VERSION,
            "node": self.node,
            "agent_version": __version__,
            "collected_at": rfc3339_now(),
            "netns": self.netns,
            "links": facts["links"],
            "pci_functions": facts["pci_functions"],
            "cni": cni,
        }
        with self._lock:
            cached = self._etag_of
            if cached is None or cached[0] is not facts or cached[1] != cni:
                self._etag_of = (facts, cni)
                self._etag = etag_of(document)
            return document, self._etag
