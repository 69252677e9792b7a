"""Where may a pod run? `spec.nodeName`, `spec.nodeSelector` and the required node affinity,
evaluated against node names and labels (pure, no I/O).

Only the hard constraints count: preferred affinity, taints and tolerations, resources and
topology spread are ignored, so the set of candidate nodes can be larger than the scheduler's,
never smaller. That is the safe side for the webhook: a device that is taken on a node the pod
could not actually reach only costs a denial the user can answer by pinning the pod.

Semantics follow the scheduler (k8s.io/component-helpers/scheduling/corev1/nodeaffinity):
nodeSelectorTerms are ORed, the requirements inside one term ANDed; a term with no requirement
matches nothing; `matchFields` knows only `metadata.name`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

HOSTNAME_LABEL = "kubernetes.io/hostname"
_OPERATORS = {"In", "NotIn", "Exists", "DoesNotExist", "Gt", "Lt"}


class PlacementError(ValueError):
    """The pod's placement fields cannot be read (they would not pass API validation)."""


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    operator: str
    values: tuple[str, ...] = ()
    field: bool = False  # matchFields (metadata.name) rather than a label

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.field:
            present, value = True, name
        else:
            present, value = self.key in labels, str(labels.get(self.key, ""))
        if self.operator == "In":
            return present and value in self.values
        if self.operator == "NotIn":
            return not present or value not in self.values
        if self.operator == "Exists":
            return present
        if self.operator == "DoesNotExist":
            return not present
        # Gt / Lt: both sides integers, else no match (as the scheduler does).
        try:
            left, right = int(value), int(self.values[0])
        except (ValueError, IndexError):
            return False
        return present and (left > right if self.operator == "Gt" else left < right)


@dataclass(frozen=True, slots=True)
class Placement:
    node_name: str = ""
    node_selector: tuple[tuple[str, str], ...] = ()
    terms: tuple[tuple[Requirement, ...], ...] | None = None  # None: no required affinity

    @property
    def restricted(self) -> bool:
        return bool(self.node_name or self.node_selector or self.terms is not None)

    def matches(self, name: str, labels: Mapping[str, str]) -> bool:
        if self.node_name and name != self.node_name:
            return False
        if any(str(labels.get(key)) != value for key, value in self.node_selector):
            return False
        if self.terms is None:
            return True
        return any(term and all(r.matches(name, labels) for r in term) for term in self.terms)

    def pinned_names(self) -> frozenset[str] | None:
        """Node names or hostnames the pod is pinned to, when the placement names a finite set
        (nodeName; a nodeSelector or every affinity term on kubernetes.io/hostname or
        metadata.name with In): lets the read side fetch only those nodes. None otherwise."""
        if self.node_name:
            return frozenset({self.node_name})
        selected = dict(self.node_selector)
        if HOSTNAME_LABEL in selected:
            return frozenset({selected[HOSTNAME_LABEL]})
        if not self.terms:
            return None
        names: set[str] = set()
        for term in self.terms:
            pins = [
                r
                for r in term
                if r.operator == "In" and (r.field or r.key == HOSTNAME_LABEL) and r.values
            ]
            if not pins:
                return None
            names.update(pins[0].values)
        return frozenset(names)


def pod_placement(pod: Any) -> Placement:
    """The hard placement constraints of a Pod object (a dict as the API server sends it)."""
    spec = pod.get("spec") if isinstance(pod, Mapping) else None
    if spec is None:
        return Placement()
    if not isinstance(spec, Mapping):
        raise PlacementError("spec is not an object")
    node_name = spec.get("nodeName") or ""
    if not isinstance(node_name, str):
        raise PlacementError("spec.nodeName is not a string")
    selector = spec.get("nodeSelector") or {}
    if not isinstance(selector, Mapping) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in selector.items()
    ):
        raise PlacementError("spec.nodeSelector is not a map of strings")
    return Placement(
        node_name=node_name,
        node_selector=tuple(sorted(selector.items())),
        terms=_required_terms(spec.get("affinity")),
    )


def _required_terms(affinity: Any) -> tuple[tuple[Requirement, ...], ...] | None:
    if not affinity:
        return None
    path = "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution"
    node_affinity = _get(affinity, "nodeAffinity", "spec.affinity")
    required = _get(node_affinity, "requiredDuringSchedulingIgnoredDuringExecution", path)
    if required is None:
        return None
    terms = _get(required, "nodeSelectorTerms", path)
    if not isinstance(terms, list):
        raise PlacementError(f"{path}.nodeSelectorTerms is not a list")
    result = []
    for index, term in enumerate(terms):
        where = f"{path}.nodeSelectorTerms[{index}]"
        if not isinstance(term, Mapping):
            raise PlacementError(f"{where} is not an object")
        requirements = [
            *_requirements(term.get("matchExpressions"), f"{where}.matchExpressions", False),
            *_requirements(term.get("matchFields"), f"{where}.matchFields", True),
        ]
        result.append(tuple(requirements))
    return tuple(result)


def _requirements(items: Any, where: str, field: bool) -> list[Requirement]:
    if items is None:
        return []
    if not isinstance(items, list):
        raise PlacementError(f"{where} is not a list")
    result = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise PlacementError(f"{where}[{index}] is not an object")
        key, operator, values = item.get("key"), item.get("operator"), item.get("values") or []
        if not isinstance(key, str) or operator not in _OPERATORS:
            raise PlacementError(f"{where}[{index}] needs a key and a known operator")
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            raise PlacementError(f"{where}[{index}].values is not a list of strings")
        if field and key != "metadata.name":
            raise PlacementError(f"{where}[{index}]: matchFields supports only metadata.name")
        result.append(Requirement(key, operator, tuple(values), field))
    return result


def _get(value: Any, key: str, where: str) -> Any:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise PlacementError(f"{where} is not an object")
    return value.get(key)
