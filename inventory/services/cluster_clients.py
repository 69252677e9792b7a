"""The Kubernetes API clients of the clusters the portal sweeps, one per cluster for the life of
the process (each with its watch: clients/watch.py), and which clusters a sweep covers.

The default cluster (NICPORTAL_CLUSTER_NAME with no credentials registered) is reached as the
settings say (KUBECONFIG, NICPORTAL_IN_CLUSTER, NICPORTAL_KUBE_CONTEXT): a portal without a
registry watches it alone, with no configuration beyond what it always had. Every other cluster
is reached with the credentials its registry entry names (clients/credentials.py).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import weakref
from collections.abc import Callable

from django.conf import settings

from inventory.clients import credentials
from inventory.clients.cluster import ClusterClient, ClusterError, NotFound
from inventory.clients.watch import ClusterWatch
from inventory.models import Cluster
from inventory.sync.listing import get_cluster

# One cluster client per cluster (None: the settings' cluster) and configuration, and one watch
# per client, for the life of the process: the watch's copy of the cluster is what lets the next
# sweep read only what changed.
_clients: dict[int | None, tuple[tuple, ClusterClient]] = {}
_watches: weakref.WeakKeyDictionary[ClusterClient, ClusterWatch] = weakref.WeakKeyDictionary()
_readers_lock = threading.Lock()


def settings_client() -> ClusterClient:
    """The process's ClusterClient for the configured cluster (a new one when the
    configuration, or the kubeconfig file, changed)."""
    kubeconfig = settings.KUBECONFIG or ""
    try:
        changed = os.stat(kubeconfig).st_mtime_ns if kubeconfig else 0
    except OSError:
        changed = -1
    key = (
        kubeconfig,
        changed,
        settings.KUBE_CONTEXT,
        settings.KUBE_IN_CLUSTER,
        settings.KUBE_TIMEOUT,
        settings.AGENT_NAMESPACE,
        settings.AGENT_LABEL_SELECTOR,
        settings.AGENT_PORT_NAME,
    )
    return _client_in_slot(None, key, ClusterClient.from_settings)


def is_default(cluster: Cluster) -> bool:
    """The cluster reached as the settings say: NICPORTAL_CLUSTER_NAME, no credentials of its own
    registered (what a portal without a registry watches)."""
    return cluster.name == settings.CLUSTER_NAME and not cluster.credentials


def is_registered(cluster: Cluster) -> bool:
    """A cluster the sweeps can reach: the default one, or one with credentials registered."""
    return bool(cluster.credentials) or cluster.name == settings.CLUSTER_NAME


def cluster_client(cluster: Cluster) -> ClusterClient:
    """The process's ClusterClient for this cluster (clients/credentials.py: from the files or
    the Secret its registry entry names; the settings' for the default cluster). A new one when
    the entry, the kubeconfig file, or (every CLUSTER_SECRET_TTL seconds) the Secret may have
    changed. ClusterError when its credentials cannot be loaded."""
    if is_default(cluster):
        return settings_client()
    try:
        changed = os.stat(cluster.kubeconfig).st_mtime_ns if cluster.kubeconfig else 0
    except OSError:
        changed = -1
    secret_text, secret_digest = _secret(cluster) if cluster.kubeconfig_secret else ("", "")
    key = (
        cluster.name,
        cluster.credentials,
        cluster.kubeconfig,
        changed,
        cluster.kubeconfig_secret,
        secret_digest,
        cluster.context,
        tuple(credentials.settings_options().items()),
    )
    return _client_in_slot(
        cluster.pk,
        key,
        lambda: credentials.client_for(cluster, home=settings_client, secret_text=secret_text),
    )


# A kubeconfig read from a Secret, by cluster id: (Secret, when read, its text, its digest). Read
# again every CLUSTER_SECRET_TTL seconds; the client is made again only when the text changed,
# so that the cluster's watch (and what it saves: a listing of the cluster) is kept.
_secrets: dict[int, tuple[str, float, str, str]] = {}


def _secret(cluster: Cluster) -> tuple[str, str]:
    """The kubeconfig in the cluster's Secret and its digest. While the home cluster does not
    answer, the last text read is used (the client made from it keeps working); a Secret that
    is gone or holds no kubeconfig is an error at once."""
    held = _secrets.get(cluster.pk)
    now = time.monotonic()
    if held is not None and held[0] == cluster.kubeconfig_secret:
        if now - held[1] < settings.CLUSTER_SECRET_TTL:
            return held[2], held[3]
    try:
        text = credentials.read_kubeconfig_secret(settings_client(), cluster.kubeconfig_secret)
    except (NotFound, credentials.SecretUnusable):
        raise
    except ClusterError:
        if held is not None and held[0] == cluster.kubeconfig_secret:
            return held[2], held[3]
        raise
    digest = hashlib.sha256(text.encode()).hexdigest()
    _secrets[cluster.pk] = (cluster.kubeconfig_secret, now, text, digest)
    return text, digest


def _client_in_slot(
    slot: int | None, key: tuple, make: Callable[[], ClusterClient]
) -> ClusterClient:
    with _readers_lock:
        held = _clients.get(slot)
        if held is not None and held[0] == key:
            return held[1]
    client = make()  # outside the lock: making a cluster's client may need the home client
    with _readers_lock:
        held = _clients.get(slot)
        if held is not None and held[0] == key:
            client.close()
            return held[1]
        if held is not None:
            held[1].close()
        _clients[slot] = (key, client)
        return client


def forget_cluster_reads() -> None:
    """Drop this process's cluster clients and their watches: the next sweep lists the cluster
    again, as a new process's first sweep does."""
    with _readers_lock:
        for _key, client in _clients.values():
            client.close()
        _clients.clear()
        _watches.clear()
        _secrets.clear()


def cluster_watch(client: ClusterClient) -> ClusterWatch:
    with _readers_lock:
        watch = _watches.get(client)
        if watch is None:
            watch = ClusterWatch(client, window=settings.KUBE_WATCH_SECONDS)
            _watches[client] = watch
        return watch


def sweep_targets() -> list[Cluster]:
    """The clusters a sweep covers: every enabled one the sweeps can reach (is_registered),
    the default cluster's row made on the way (a portal without a registry sweeps it alone)."""
    get_cluster()
    return [
        cluster
        for cluster in Cluster.objects.filter(enabled=True).order_by("name")
        if is_registered(cluster)
    ]
