"""Least privilege, enforced by the real API server: the portal runs in the lab as the
ServiceAccount of deploy/kubernetes/rbac.yaml, with exactly the ClusterRole shipped there.

With the shipped role it completes a sweep and an apply; take one verb away and the part that
needs it fails with the API server's 403 (the role is put back afterwards)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator

import pytest
import yaml
from kubernetes import client

from inventory.clients.cluster import ClusterClient, ClusterError
from inventory.models import Interface, TeamNamespace
from inventory.services import nads, polling
from lab.control_plane import PORTAL_RBAC
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

ROLE = "nicportal-portal"


def shipped_rules() -> list[dict]:
    [role] = [d for d in yaml.safe_load_all(PORTAL_RBAC.read_text()) if d["kind"] == "ClusterRole"]
    return role["rules"]


@contextlib.contextmanager
def role_without(lab, api_group: str, resource: str, verb: str) -> Iterator[None]:
    """The shipped ClusterRole minus one verb on one resource, for the duration of the block."""
    rbac = client.RbacAuthorizationV1Api(lab.kube())
    rules = []
    for rule in shipped_rules():
        if (
            api_group in rule["apiGroups"]
            and resource in rule["resources"]
            and verb in rule["verbs"]
        ):
            rest = [r for r in rule["resources"] if r != resource]
            if rest:
                rules.append({**rule, "resources": rest})
            rules.append(
                {**rule, "resources": [resource], "verbs": [v for v in rule["verbs"] if v != verb]}
            )
        else:
            rules.append(rule)
    assert rules != shipped_rules(), f"the shipped role has no {verb} on {resource}"
    rbac.patch_cluster_role(ROLE, [{"op": "replace", "path": "/rules", "value": rules}])
    try:
        yield
    finally:
        rbac.patch_cluster_role(
            ROLE, [{"op": "replace", "path": "/rules", "value": shipped_rules()}]
        )


def test_the_portal_runs_as_the_shipped_service_account(lab_portal):
    config = yaml.safe_load(lab_portal.portal_kubeconfig.read_text())
    assert config["users"][0]["name"] == "system:serviceaccount:nicportal:nicportal-portal"
    review = client.AuthorizationV1Api(lab_portal.kube()).create_subject_access_review(
        {
            "spec": {
                "user": "system:serviceaccount:nicportal:nicportal-portal",
                "resourceAttributes": {"verb": "delete", "resource": "pods"},
            }
        }
    )
    assert review.status.allowed is False  # nothing beyond the shipped role


def test_with_the_shipped_role_it_completes_a_sweep_and_an_apply(lab_portal):
    report = polling.sweep_inline(workers=4)
    assert report.cluster_error == ""
    team = make_team("blue")
    user = make_user("alice", teams=[team])
    TeamNamespace.objects.create(team=team, pattern="default")  # where blue may apply
    nic = Interface.objects.get(node__name="node-a", name="eth1")
    [row] = nads.apply(user=user, team=team, namespace="default", name="rbac-ok",
                       interface_ids=[nic.pk])  # fmt: skip
    with ClusterClient.from_settings() as cluster:
        # Every lab node has an eth1: the builder selects node-a's by its MAC.
        assert json.loads(cluster.get_nad("default", "rbac-ok").config)["hwaddr"] == nic.mac
    assert row.in_cluster


def test_without_list_on_pods_the_first_sweep_fails_with_403(lab_portal):
    # A process's first sweep lists the cluster (later ones watch it from there).
    polling.forget_cluster_reads()
    with role_without(lab_portal, "", "pods", "list"):
        report = polling.sweep_inline(workers=4)
    assert "403 Forbidden" in report.cluster_error
    assert "list pods" in report.cluster_error


def test_without_watch_on_pods_a_later_sweep_fails_with_403(lab_portal):
    assert polling.sweep_inline(workers=4).cluster_error == ""
    with role_without(lab_portal, "", "pods", "watch"):
        report = polling.sweep_inline(workers=4)
    assert "403 Forbidden" in report.cluster_error
    assert "watch pods" in report.cluster_error


def test_without_create_on_nads_the_apply_fails_and_leaves_nothing(lab_portal):
    team = make_team("blue")
    user = make_user("alice", teams=[team])
    TeamNamespace.objects.create(team=team, pattern="default")  # where blue may apply
    nic = Interface.objects.get(node__name="node-b", name="eth1")
    with role_without(lab_portal, "k8s.cni.cncf.io", "network-attachment-definitions", "create"):
        with pytest.raises(ClusterError, match="403 Forbidden"):
            nads.apply(user=user, team=team, namespace="default", name="rbac-denied",
                       interface_ids=[nic.pk])  # fmt: skip
    assert (
        lab_portal.custom.list_namespaced_custom_object(
            "k8s.cni.cncf.io", "v1", "default", "network-attachment-definitions"
        )["items"]
        == []
    )


@pytest.mark.parametrize("first_sweep", [True, False])
def test_without_reading_the_agent_daemonset_the_sweep_fails_with_403(lab_portal, first_sweep):
    """The agents' Role lets the portal read that one DaemonSet (whose uid makes a pod an agent):
    get it, or list and watch it by name; without that the sweep stops with the API server's 403
    rather than trust any pod, whether it lists the cluster (a process's first sweep) or
    watches it."""
    rbac = client.RbacAuthorizationV1Api(lab_portal.kube())
    [role] = [
        d
        for d in yaml.safe_load_all(PORTAL_RBAC.read_text())
        if d["kind"] == "Role" and d["metadata"]["name"] == "nicportal-portal-agents"
    ]
    assert role["rules"][0]["verbs"] == ["get", "list", "watch"]
    if first_sweep:
        polling.forget_cluster_reads()
    else:
        assert polling.sweep_inline(workers=4).cluster_error == ""
    unreadable = [{**role["rules"][0], "verbs": ["update"]}]
    rbac.patch_namespaced_role(
        role["metadata"]["name"],
        "nicportal",
        [{"op": "replace", "path": "/rules", "value": unreadable}],
    )
    try:
        report = polling.sweep_inline(workers=4)
    finally:
        rbac.patch_namespaced_role(
            role["metadata"]["name"],
            "nicportal",
            [{"op": "replace", "path": "/rules", "value": role["rules"]}],
        )
    assert "403 Forbidden" in report.cluster_error
    assert "daemonsets" in report.cluster_error
    assert polling.sweep_inline(workers=4).cluster_error == ""
