"""The NAD manifest, its YAML and the pod snippet that goes with it."""

from __future__ import annotations

import json
from typing import Any

import yaml

API_VERSION = "k8s.cni.cncf.io/v1"
KIND = "NetworkAttachmentDefinition"
NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
RESOURCE_NAME_ANNOTATION = "k8s.v1.cni.cncf.io/resourceName"
# Which nodes a portal-built NAD was made for; the linter checks only those when present.
NODES_ANNOTATION = "nicportal.io/nodes"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
HOSTNAME_LABEL = "kubernetes.io/hostname"


class _LiteralText(str):
    """A string PyYAML writes as a literal block (spec.config stays readable JSON)."""


class _NadDumper(yaml.SafeDumper):
    pass


def _literal(dumper: yaml.SafeDumper, value: _LiteralText) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


_NadDumper.add_representer(_LiteralText, _literal)


def config_json(config: dict[str, Any]) -> str:
    # Insertion order is the order the builder chose (cniVersion, name, type, selector, ipam):
    # stable, and the way people write these by hand.
    return json.dumps(config, indent=2)


def manifest(
    *, namespace: str, name: str, config_text: str, annotations: dict[str, str]
) -> dict[str, Any]:
    metadata: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "labels": {MANAGED_BY_LABEL: "nicportal"},
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": API_VERSION,
        "kind": KIND,
        "metadata": metadata,
        "spec": {"config": config_text},
    }


def to_yaml(obj: dict[str, Any], *, literal_config: bool = True) -> str:
    """Block-style YAML through a SafeDumper subclass; spec.config as a literal block."""
    if literal_config and "spec" in obj and isinstance(obj["spec"].get("config"), str):
        obj = {**obj, "spec": {**obj["spec"], "config": _LiteralText(obj["spec"]["config"])}}
    return yaml.dump(
        obj, Dumper=_NadDumper, default_flow_style=False, sort_keys=False, allow_unicode=True
    )


def pod_snippet(
    *,
    namespace: str,
    name: str,
    pod_interface: str,
    nodes: tuple[str, ...],
    resource_name: str = "",
) -> dict[str, Any]:
    """The part of a pod spec that uses the NAD: the Multus annotation, and the placement that
    keeps the pod on a node where the NAD's device exists (nodeSelector for one node, required
    node affinity for several). With a device plugin the scheduler places the pod by resource.
    kubernetes.io/hostname is the node name on kubeadm, MicroK8s and most distributions."""
    snippet: dict[str, Any] = {
        "metadata": {"annotations": {NETWORKS_ANNOTATION: f"{namespace}/{name}@{pod_interface}"}},
    }
    spec: dict[str, Any] = {}
    if resource_name:
        spec["containers"] = [
            {
                "name": "main",
                "resources": {
                    "requests": {resource_name: "1"},
                    "limits": {resource_name: "1"},
                },
            }
        ]
    elif len(nodes) == 1:
        spec["nodeSelector"] = {HOSTNAME_LABEL: nodes[0]}
    elif nodes:
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": HOSTNAME_LABEL,
                                    "operator": "In",
                                    "values": list(nodes),
                                }
                            ]
                        }
                    ]
                }
            }
        }
    if spec:
        snippet["spec"] = spec
    return snippet
