"""A ClusterClient for a registered cluster (models.Cluster), from where its credentials are kept.

The registry never holds a credential: an entry names a kubeconfig file (typically a Secret
mounted into the portal's pods), a Secret in the portal's own cluster (read through the home
cluster's client, key `kubeconfig`), or the pod's own service account (`in_cluster`). A
kubeconfig read from a Secret must be self-contained (certificate and token data inline, no
paths): it is loaded from a private temporary file that is deleted as soon as it is loaded.
"""

from __future__ import annotations

import base64
import binascii
import os
import tempfile
from collections.abc import Callable

from django.conf import settings

from inventory.clients.cluster import ClusterClient, ClusterError
from inventory.models import Cluster

SECRET_KEY = "kubeconfig"


class SecretUnusable(ClusterError):
    """The Secret was read and holds no usable kubeconfig (not an outage: say so at once)."""


def settings_options() -> dict:
    """What every cluster's client shares with the default one: timeout and agent discovery."""
    return {
        "timeout": settings.KUBE_TIMEOUT,
        "agent_namespace": settings.AGENT_NAMESPACE,
        "agent_daemonset": settings.AGENT_DAEMONSET,
        "agent_label_selector": settings.AGENT_LABEL_SELECTOR,
        "agent_port_name": settings.AGENT_PORT_NAME,
    }


def client_for(
    cluster: Cluster, *, home: Callable[[], ClusterClient], secret_text: str | None = None
) -> ClusterClient:
    """A new client for this registered cluster; ClusterError when its credentials cannot be
    found or loaded (the message says which and where, never what they hold). `home` gives the
    portal's own cluster's client (for a kubeconfig kept in a Secret; `secret_text`: the
    Secret's kubeconfig when the caller has just read it)."""
    options = settings_options()
    context = cluster.context or None
    if cluster.in_cluster:
        return ClusterClient(in_cluster=True, **options)
    if cluster.kubeconfig:
        return ClusterClient(kubeconfig=cluster.kubeconfig, context=context, **options)
    if cluster.kubeconfig_secret:
        text = secret_text or read_kubeconfig_secret(home(), cluster.kubeconfig_secret)
        return _client_from_text(text, cluster, context, options)
    raise ClusterError(
        f"cluster {cluster.name}: no credentials registered (give it a kubeconfig file, a "
        "kubeconfig Secret or in-cluster: manage.py cluster add)"
    )


def read_kubeconfig_secret(home: ClusterClient, reference: str) -> str:
    """The `kubeconfig` key of the Secret `namespace/name`, as text."""
    namespace, _, name = reference.partition("/")
    data = home._call(
        "get", f"secret {namespace}/{name}", home._core.read_namespaced_secret, name, namespace
    )
    encoded = (data.get("data") or {}).get(SECRET_KEY)
    if not isinstance(encoded, str) or not encoded:
        raise SecretUnusable(f"secret {namespace}/{name} has no {SECRET_KEY!r} key")
    try:
        return base64.b64decode(encoded, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SecretUnusable(
            f"secret {namespace}/{name}: {SECRET_KEY!r} is not text: {exc}"
        ) from exc


def _client_from_text(
    text: str, cluster: Cluster, context: str | None, options: dict
) -> ClusterClient:
    with tempfile.TemporaryDirectory(prefix="nicportal-kubeconfig-") as directory:
        path = os.path.join(directory, "kubeconfig")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as handle:
            handle.write(text)
        try:
            return ClusterClient(kubeconfig=path, context=context, **options)
        except ClusterError as exc:
            # The temporary path means nothing to a person: name the Secret instead.
            detail = str(exc).replace(repr(path), "").replace(path, "")
            raise ClusterError(
                f"cluster {cluster.name}: the kubeconfig in secret {cluster.kubeconfig_secret} "
                f"does not load: {detail}"
            ) from exc
