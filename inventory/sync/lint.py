"""The stored findings of the cluster's NADs: re-linted against the inventory when something
they depend on changed, written only where they changed."""

from __future__ import annotations

import logging

from django.core.cache import cache

from inventory.models import Cluster, NetworkAttachment, Node
from inventory.read import facts
from inventory.rules import nad
from inventory.rules.nad.selection import DeviceValues, device_values

log = logging.getLogger(__name__)


def _lint_key(cluster_id: int) -> str:
    return f"nad-lint-dirty:{cluster_id}"


def mark_lint_dirty(cluster_id: int) -> None:
    """Findings depend on the NADs, the interfaces' facts and verdicts and the reservations:
    whatever changes one of them marks the cluster's lint as due."""
    cache.set(_lint_key(cluster_id), True, timeout=None)


def lint_cluster_nads(cluster: Cluster, *, force: bool = False) -> int:
    """Re-lint every NAD of the cluster against the current inventory when something they depend
    on changed (or force); write only the NADs whose findings changed. Returns rows written.

    An unknown flag (a fresh cache) counts as due, so a restart re-lints once. The flag is
    cleared before linting: a change made meanwhile marks it again for the next sweep. A NAD the
    linter itself cannot read gets one LINT_FAILED finding, and the others are linted all the
    same."""
    if not force and not cache.get(_lint_key(cluster.pk), True):
        return 0
    cache.set(_lint_key(cluster.pk), False, timeout=None)

    # The linter needs a node's name and its host-device plugin (cni), nothing else of it.
    nodes = list(Node.objects.filter(cluster=cluster, in_cluster=True).only("id", "name", "cni"))
    rows = list(
        NetworkAttachment.objects.filter(cluster=cluster, in_cluster=True).select_related("team")
    )
    # Only the interfaces the NADs could select (a few per node, not the whole fleet): the
    # linter matches each NAD's own selector, so the others change nothing.
    devices = facts.devices_by_node(nodes, only=_selected(rows))
    plugins = facts.plugins_by_node(nodes)
    multus_version = facts.multus_version_for(cluster)
    changed = []
    for row in rows:
        try:
            findings = [
                f.as_dict()
                for f in nad.lint(
                    namespace=row.namespace,
                    name=row.name,
                    config=row.config,
                    annotations={k: str(v) for k, v in (row.annotations or {}).items()},
                    devices_by_node=devices,
                    plugins_by_node=plugins,
                    multus_version=multus_version,
                    team=row.team.name if row.team is not None else "",
                )
            ]
        except Exception as exc:  # one unreadable NAD must not stop the others (logged)
            log.exception("nad=%s/%s lint crashed", row.namespace, row.name)
            findings = [nad.lint_failed(exc).as_dict()]
        if row.findings != findings:
            row.findings = findings
            changed.append(row)
    if changed:
        NetworkAttachment.objects.bulk_update(changed, ["findings", "updated_at"], batch_size=200)
    return len(changed)


def _selected(rows: list[NetworkAttachment]) -> DeviceValues | None:
    """The values any of these NADs could select; None when one may need every interface."""
    found = DeviceValues()
    for row in rows:
        try:
            values = device_values(row.config)
        except Exception:  # the linter reports what it cannot read; read everything for it
            log.exception("nad=%s/%s selection unreadable", row.namespace, row.name)
            return None
        if values is None:
            return None
        found |= values
    return found
