"""The cluster read by watch, not by relisting: a copy of the collections a sweep needs (Nodes,
Pods, NetworkAttachmentDefinitions, the FailedCreatePodSandBox Events and the agents' DaemonSet)
kept current from the API server's watch streams, so that a sweep of an unchanged cluster reads
no object.

How it follows the Kubernetes API's rules (api-concepts, "Efficient detection of changes"):

- The first read of a collection is a paged list; the list's `metadata.resourceVersion` is where
  the copy stands.
- Every later read is a watch from that resourceVersion with `allowWatchBookmarks=true` and a
  short `timeoutSeconds`. The server sends what changed since then (ADDED, MODIFIED, DELETED,
  in order), each event moving the copy's resourceVersion on; a BOOKMARK says "nothing more up
  to this resourceVersion", so the read stops there. The server ends the stream at the timeout
  it was given, and everything up to then has been delivered too. A real API server sends
  bookmarks only once its watch cache has moved past the watch's resourceVersion (some change
  in the collection, or etcd's progress notification), about 2 s before the timeout: on a busy
  collection the read ends at that bookmark, on an idle one at the timeout (measured on
  kube-apiserver 1.37: idle watches of 3, 5 and 10 s ended at their timeout with nothing sent).
  So a read also ends after IDLE seconds without a byte: the server sends what it has (its
  watch cache's events after the resourceVersion) at once, and stopping early can only delay a
  change to the next read, never lose it (the copy stands at the last event read). The
  collections are read in parallel: a sweep waits IDLE seconds, at most `window`.
- 410 Gone (the resourceVersion is older than the server's watch cache keeps, as after a long
  outage), as the answer to the request or as an ERROR event inside the stream: the collection
  is listed again from scratch, and the copy replaced by what the list says.
- Any other failure leaves the copy as it was after the last event read: the next read resumes
  from there (events are applied one by one, each with its resourceVersion).

Kept per process (services/polling.py holds one per cluster client): the first sweep in a new
process lists everything once. `last_read` says what the last sweep read: lists, watches,
relists, objects and bytes.

What KMock (the lab's and the fast tests' emulator) does differently: it has no resourceVersions,
no bookmarks and no watch timeout (a watch replays every object, then never ends), so the
watch is off there (settings.KUBE_WATCH) and sweeps list as before.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from inventory.clients.cluster import ClusterClient, ClusterError, Expired, NotFound
from inventory.clients.cluster_objects import (
    ClusterListing,
    daemonset_uids,
    event_from_json,
    is_pod_event,
    nad_from_json,
    node_from_json,
    pod_from_json,
)
from inventory.rules.diagnosis.facts import SANDBOX_FAILURE_REASON

# Seconds a watch read is given (timeoutSeconds): the most a sweep waits for the cluster.
DEFAULT_WINDOW = 3
# Seconds of silence that end a watch read.
IDLE = 0.5


@dataclass
class ReadStats:
    """What one read of the cluster took from the API server."""

    lists: int = 0  # list requests (pages)
    watches: int = 0  # watch requests
    relists: int = 0  # collections listed again after a 410
    objects: int = 0  # objects received, in list items and watch events (not bookmarks)
    bookmarks: int = 0  # watches that ended at the server's bookmark (not at its timeout)
    bytes: int = 0  # response bytes

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def _key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _version(obj: dict[str, Any]) -> str:
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _is_sandbox_failure(obj: dict[str, Any]) -> bool:
    # The server filters by reason; filtered again here like every selector (cluster.py).
    return is_pod_event(obj) and obj.get("reason") == SANDBOX_FAILURE_REASON


@dataclass(frozen=True)
class _Kind:
    parse: Callable[[dict[str, Any]], Any]
    keep: Callable[[dict[str, Any]], bool]


KINDS: dict[str, _Kind] = {
    "nodes": _Kind(node_from_json, lambda obj: True),
    "pods": _Kind(pod_from_json, lambda obj: True),
    "nads": _Kind(nad_from_json, lambda obj: True),
    "sandbox_failures": _Kind(event_from_json, _is_sandbox_failure),
    # Kept as the API sent them: choose_agents needs only their namespaces and uids.
    "agent_daemonsets": _Kind(lambda obj: obj, lambda obj: True),
}


class _Collection:
    """One collection's copy: parsed objects by (namespace, name), and its resourceVersion."""

    def __init__(self, client: ClusterClient, name: str, window: int) -> None:
        self.client = client
        self.name = name
        self.kind = KINDS[name]
        self.window = window
        self.items: dict[tuple[str, str], Any] = {}
        self.version: str | None = None

    def read(self, stats: ReadStats) -> None:
        if self.version is None:
            self._list(stats)
            return
        try:
            self._follow(stats)
        except Expired:
            stats.relists += 1
            self._list(stats)

    def _list(self, stats: ReadStats) -> None:
        raw: list[dict[str, Any]] = []
        token: str | None = None
        restarted = False
        version = ""
        while True:
            try:
                page = self.client.list_page(self.name, continue_token=token)
            except Expired:
                # The continue token expired mid-way: start over once (as _list_all does).
                if token is None or restarted:
                    raise
                raw, token, restarted = [], None, True
                continue
            except NotFound:
                if self.name != "nads":
                    raise
                # No NAD CRD: Multus is absent, there are no NADs; ask again next time.
                self.items, self.version = {}, None
                return
            stats.lists += 1
            if token is None:
                version = str((page.get("metadata") or {}).get("resourceVersion") or "")
            items = [item for item in page.get("items") or [] if isinstance(item, dict)]
            stats.objects += len(items)
            raw += items
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                break
        self.items = {_key(obj): self.kind.parse(obj) for obj in raw if self.kind.keep(obj)}
        # An empty resourceVersion cannot be watched from: list again next time.
        self.version = version or None

    def _follow(self, stats: ReadStats) -> None:
        stats.watches += 1
        events = self.client.watch_events(
            self.name,
            resource_version=self.version or "",
            timeout_seconds=self.window,
            idle=min(IDLE, self.window),
        )
        try:
            for event in events:
                kind = event.get("type")
                obj = event.get("object")
                if not isinstance(obj, dict):
                    continue
                if kind == "BOOKMARK":
                    stats.bookmarks += 1
                    self.version = _version(obj) or self.version
                    return  # every change up to the bookmark's version has been sent
                if kind == "ERROR":
                    if obj.get("code") == 410:
                        raise Expired(f"watch {self.name}: {obj.get('message') or '410 Gone'}")
                    raise ClusterError(
                        f"watch {self.name}: the API server said {obj.get('code')}: "
                        f"{obj.get('message') or obj.get('reason') or 'error'}"
                    )
                stats.objects += 1
                key = _key(obj)
                if kind == "DELETED" or not self.kind.keep(obj):
                    self.items.pop(key, None)
                elif kind in ("ADDED", "MODIFIED"):
                    self.items[key] = self.kind.parse(obj)
                self.version = _version(obj) or self.version
        finally:
            events.close()


class ClusterWatch:
    """The cluster as a sweep needs it (a ClusterListing), read by watch. Thread-safe: one
    read at a time."""

    def __init__(self, client: ClusterClient, *, window: int = DEFAULT_WINDOW) -> None:
        self.client = client
        self.collections = {name: _Collection(client, name, window) for name in KINDS}
        self.last_read = ReadStats()
        # The listing of the last read, and whether that read received anything: a read that
        # received no list page and no event returns the same listing object as the one
        # before it (`changed` False), which a sweep need not apply again.
        self.changed = True
        self._listing: ClusterListing | None = None
        self._lock = threading.Lock()

    def listing(self) -> ClusterListing:
        """Bring the collections up to date (in parallel) and return them as a listing."""
        with self._lock:
            stats = ReadStats()
            shares = {name: ReadStats() for name in self.collections}
            before = self.client.bytes_read
            with ThreadPoolExecutor(max_workers=len(self.collections)) as pool:
                futures = [
                    pool.submit(collection.read, shares[name])
                    for name, collection in self.collections.items()
                ]
                errors = [future.exception() for future in futures]
            for share in shares.values():
                for field, value in share.as_dict().items():
                    setattr(stats, field, getattr(stats, field) + value)
            stats.bytes = self.client.bytes_read - before
            self.last_read = stats
            for error in errors:
                if error is not None:
                    self.changed, self._listing = True, None
                    raise error
            if self._listing is not None and not (stats.lists or stats.relists or stats.objects):
                self.changed = False
                return self._listing
            pods = list(self.collections["pods"].items.values())
            nodes = list(self.collections["nodes"].items.values())
            daemonsets = daemonset_uids(
                self.collections["agent_daemonsets"].items.values(), self.client.agent_daemonset
            )
            agents = self.client.agents(pods, nodes, daemonsets=daemonsets)
            self.changed = True
            self._listing = ClusterListing(
                nodes=nodes,
                pods=pods,
                nads=list(self.collections["nads"].items.values()),
                sandbox_failures=list(self.collections["sandbox_failures"].items.values()),
                agent_endpoints=agents.endpoints,
                rogue_agents=agents.rogues,
            )
            return self._listing


def read_by_listing(client: ClusterClient) -> tuple[ClusterListing, ReadStats]:
    """The same listing by listing everything (for servers without watch semantics), with what
    that read."""
    before_bytes, before_lists = client.bytes_read, client.lists_made
    listing = client.listing()
    stats = ReadStats(
        lists=client.lists_made - before_lists,
        objects=len(listing.nodes)
        + len(listing.pods)
        + len(listing.nads)
        + len(listing.sandbox_failures),
        bytes=client.bytes_read - before_bytes,
    )
    return listing, stats
