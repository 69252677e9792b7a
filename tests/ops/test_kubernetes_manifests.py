"""deploy/kubernetes: every manifest validates against Kubernetes 1.33 (strict), the kustomization
lists them all, and the portal's pods are locked down as the issue asks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "deploy" / "kubernetes"
VALIDATE = Path(sys.executable).parent / "kubernetes-validate"
MANIFEST_FILES = sorted(p for p in MANIFESTS.glob("*.yaml") if p.name != "kustomization.yaml")


def documents() -> list[dict]:
    return [doc for path in MANIFEST_FILES for doc in yaml.safe_load_all(path.read_text()) if doc]


def find(kind: str, name: str) -> dict:
    for doc in documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"no {kind} {name}")


def run_validate(*paths: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(VALIDATE), "-k", "1.33", "--strict", *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_manifest_validates_against_kubernetes_1_33_strictly():
    assert len(MANIFEST_FILES) >= 8
    result = run_validate(*MANIFEST_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


def test_strict_validation_rejects_an_unknown_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  nmespace: typo\ndata: {}\n"
    )
    assert run_validate(bad).returncode != 0


def test_the_kustomization_lists_every_manifest():
    kustomization = yaml.safe_load((MANIFESTS / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(p.name for p in MANIFEST_FILES)


def test_everything_namespaced_lives_in_nicportal():
    for doc in documents():
        if doc["kind"] in {
            "Namespace",
            "ClusterRole",
            "ClusterRoleBinding",
            "ValidatingWebhookConfiguration",
        }:
            continue
        assert doc["metadata"].get("namespace") == "nicportal", doc["metadata"]["name"]


PORTAL_WORKLOADS = [
    ("Deployment", "nicportal-web"),
    ("Deployment", "nicportal-worker"),
    ("Deployment", "nicportal-beat"),
    ("Job", "nicportal-migrate"),
    ("Deployment", "nicportal-webhook"),
]


@pytest.mark.parametrize(("kind", "name"), PORTAL_WORKLOADS)
def test_portal_pods_run_locked_down(kind, name):
    pod = find(kind, name)["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    tmp_volumes = {v["name"] for v in pod["volumes"] if "emptyDir" in v}
    for container in pod.get("initContainers", []) + pod["containers"]:
        security = container["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"]["drop"] == ["ALL"]
        assert {"requests", "limits"} <= set(container["resources"])
        tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
        assert tmp and tmp[0]["name"] in tmp_volumes


def test_beat_is_a_single_replica_recreated_never_rolled():
    beat = find("Deployment", "nicportal-beat")["spec"]
    assert beat["replicas"] == 1
    assert beat["strategy"] == {"type": "Recreate"}


def test_web_probes_hit_healthz_and_readyz_with_an_allowed_host():
    web = find("Deployment", "nicportal-web")["spec"]["template"]["spec"]["containers"][0]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    config = find("ConfigMap", "nicportal-config")["data"]
    allowed = config["DJANGO_ALLOWED_HOSTS"].split(",")
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        headers = {h["name"]: h["value"] for h in web[probe]["httpGet"]["httpHeaders"]}
        assert headers["Host"] in allowed
        assert headers["X-Forwarded-Proto"] == "https"


def test_the_service_matches_the_web_pods_and_the_agents_portal_url():
    service = find("Service", "nicportal-web")
    web = find("Deployment", "nicportal-web")
    labels = web["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    agent = find("DaemonSet", "nicportal-agent")["spec"]["template"]["spec"]["containers"][0]
    portal_url = {e["name"]: e.get("value") for e in agent["env"]}["NICPORTAL_AGENT_PORTAL_URL"]
    assert portal_url == "http://nicportal-web.nicportal.svc.cluster.local:8000"
    assert service["spec"]["ports"][0]["port"] == 8000


def test_the_portal_reads_the_environment_the_readme_documents():
    config = find("ConfigMap", "nicportal-config")["data"]
    assert config["NICPORTAL_IN_CLUSTER"] == "1"
    assert config["NICPORTAL_PRODUCTION"] == "1"
    assert config["NICPORTAL_AGENT_NAMESPACE"] == "nicportal"
    assert config["CELERY_BROKER_URL"].startswith("redis://")
    assert config["DJANGO_ALLOWED_HOSTS"]
    for _, name in PORTAL_WORKLOADS:
        kind = "Job" if name.endswith("migrate") else "Deployment"
        for container in find(kind, name)["spec"]["template"]["spec"]["containers"]:
            env = {e["name"]: e for e in container["env"]}
            assert env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "nicportal-portal"
            assert env["DJANGO_SECRET_KEY_FILE"]["value"].endswith("/DJANGO_SECRET_KEY")
            assert container["envFrom"] == [{"configMapRef": {"name": "nicportal-config"}}]
            if name == "nicportal-webhook":  # the webhook never talks to agents: no key
                assert not {e for e in env if e.startswith("NICPORTAL_AGENT_")}
                continue
            assert env["NICPORTAL_AGENT_MASTER_KEY_FILE"]["value"] == (
                "/var/run/secrets/nicportal-agent/NICPORTAL_AGENT_MASTER_KEY"
            )
            assert env["NICPORTAL_AGENT_MASTER_KEY_PREVIOUS_FILE"]["value"] == (
                "/var/run/secrets/nicportal-agent/NICPORTAL_AGENT_MASTER_KEY_PREVIOUS"
            )
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            volumes = {
                v["name"]: v for v in find(kind, name)["spec"]["template"]["spec"]["volumes"]
            }
            secret = volumes[mounts["/var/run/secrets/nicportal-agent"]]["secret"]
            # Every key of the Secret (no items list): the previous key appears when it is added.
            assert secret["secretName"] == "nicportal-agent-master-key" and "items" not in secret


def test_secret_templates_hold_placeholders_only():
    master = find("Secret", "nicportal-agent-master-key")["stringData"]
    portal = find("Secret", "nicportal-portal")["stringData"]
    assert set(master) == {"NICPORTAL_AGENT_MASTER_KEY"}
    assert set(portal) == {"DJANGO_SECRET_KEY", "DATABASE_URL"}
    for value in [*master.values(), *portal.values()]:
        assert "REPLACE_ME" in value


def test_rbac_grants_exactly_the_least_privilege_the_portal_needs():
    role = find("ClusterRole", "nicportal-portal")
    granted = {
        (group, resource, verb)
        for rule in role["rules"]
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }
    expected = {("", r, v) for r in ("nodes", "pods", "events") for v in ("get", "list", "watch")}
    expected |= {("", "nodes", "patch")}
    expected |= {
        ("k8s.cni.cncf.io", "network-attachment-definitions", v)
        for v in ("get", "list", "watch", "create", "delete")
    }
    assert granted == expected
    binding = find("ClusterRoleBinding", "nicportal-portal")
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "nicportal-portal", "namespace": "nicportal"}
    ]
    for name in ("nicportal-web", "nicportal-worker"):
        pod = find("Deployment", name)["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "nicportal-portal"
    # In the agents' namespace only: get that one DaemonSet (whose uid the agent pods must name).
    agents = find("Role", "nicportal-portal-agents")
    assert agents["metadata"]["namespace"] == "nicportal"
    assert agents["rules"] == [
        {
            "apiGroups": ["apps"],
            "resources": ["daemonsets"],
            "resourceNames": ["nicportal-agent"],
            "verbs": ["get"],
        }
    ]
    role_binding = find("RoleBinding", "nicportal-portal-agents")
    assert role_binding["roleRef"]["name"] == "nicportal-portal-agents"
    assert role_binding["subjects"] == binding["subjects"]
    config = find("ConfigMap", "nicportal-config")["data"]
    assert (
        config["NICPORTAL_AGENT_DAEMONSET"]
        == find("DaemonSet", "nicportal-agent")["metadata"]["name"]
    )


# --- deploy/kubernetes-node-keys: agents that hold their own node key only ---------------------

NODE_KEYS = ROOT / "deploy" / "kubernetes-node-keys"


def node_keys_patch() -> dict:
    return yaml.safe_load((NODE_KEYS / "agent-node-key.yaml").read_text())


def test_the_node_keys_overlay_swaps_the_master_key_for_the_nodes_own_key_file():
    kustomization = yaml.safe_load((NODE_KEYS / "kustomization.yaml").read_text())
    assert kustomization["resources"] == ["../kubernetes"]
    assert kustomization["patches"] == [{"path": "agent-node-key.yaml"}]
    patch = node_keys_patch()
    base = find("DaemonSet", "nicportal-agent")
    assert patch["metadata"] == {"name": "nicportal-agent", "namespace": "nicportal"}
    (container,) = patch["spec"]["template"]["spec"]["containers"]
    assert container["name"] == base["spec"]["template"]["spec"]["containers"][0]["name"]
    env = {item["name"]: item for item in container["env"]}
    assert env["NICPORTAL_AGENT_MASTER_KEY_FILE"] == {
        "name": "NICPORTAL_AGENT_MASTER_KEY_FILE",
        "$patch": "delete",
    }
    assert env["NICPORTAL_AGENT_CLUSTER_NAME"]["$patch"] == "delete"
    key_file = env["NICPORTAL_AGENT_KEY_FILE"]["value"]
    (volume,) = patch["spec"]["template"]["spec"]["volumes"]
    assert volume == {
        "name": "agent-key",
        "secret": None,
        "hostPath": {"path": "/etc/nicportal", "type": "Directory"},
    }
    # The base mounts the volume of that name where the key file is looked for.
    base_mounts = base["spec"]["template"]["spec"]["containers"][0]["volumeMounts"]
    mount = next(m for m in base_mounts if m["name"] == "agent-key")
    assert key_file == mount["mountPath"] + "/agent.key" and mount["readOnly"] is True


def test_the_node_keys_overlay_renders_a_valid_agent_daemonset(tmp_path):
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl (with kustomize) is not installed; the patch is checked above")
    rendered = subprocess.run(
        [kubectl, "kustomize", str(NODE_KEYS)], capture_output=True, text=True, timeout=60
    )
    assert rendered.returncode == 0, rendered.stderr
    path = tmp_path / "rendered.yaml"
    path.write_text(rendered.stdout)
    result = run_validate(path)
    assert result.returncode == 0, result.stdout + result.stderr
    (daemonset,) = [
        doc for doc in yaml.safe_load_all(rendered.stdout) if doc and doc["kind"] == "DaemonSet"
    ]
    pod = daemonset["spec"]["template"]["spec"]
    env = {item["name"] for item in pod["containers"][0]["env"]}
    assert "NICPORTAL_AGENT_KEY_FILE" in env
    assert not env & {"NICPORTAL_AGENT_MASTER_KEY_FILE", "NICPORTAL_AGENT_CLUSTER_NAME"}
    (volume,) = [v for v in pod["volumes"] if v["name"] == "agent-key"]
    assert "secret" not in volume and volume["hostPath"]["path"] == "/etc/nicportal"


# --- the admission webhook (docs/WEBHOOK.md) -----------------------------------------------


def test_the_webhook_is_safe_by_default_and_points_at_its_own_service():
    configuration = find("ValidatingWebhookConfiguration", "nicportal")
    service = find("Service", "nicportal-webhook")
    deployment = find("Deployment", "nicportal-webhook")["spec"]["template"]
    config = find("ConfigMap", "nicportal-config")["data"]
    assert {w["name"] for w in configuration["webhooks"]} == {
        "nads.nicportal.io",
        "pods.nicportal.io",
    }
    for webhook in configuration["webhooks"]:
        assert webhook["failurePolicy"] == config["NICPORTAL_WEBHOOK_FAILURE_POLICY"] == "Ignore"
        assert webhook["timeoutSeconds"] <= 5
        assert webhook["sideEffects"] == "NoneOnDryRun"
        assert webhook["admissionReviewVersions"] == ["v1"]
        exempt = webhook["namespaceSelector"]["matchExpressions"]
        assert exempt == [
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system", "nicportal"],
            }
        ]
        target = webhook["clientConfig"]["service"]
        assert (target["name"], target["namespace"]) == ("nicportal-webhook", "nicportal")
        assert target["path"] == "/validate"
        assert target["port"] == service["spec"]["ports"][0]["port"]
    assert service["spec"]["selector"].items() <= deployment["metadata"]["labels"].items()
    assert config["NICPORTAL_WEBHOOK_MODE"] in {"warn", "enforce"}
    (nads,) = [w for w in configuration["webhooks"] if w["name"] == "nads.nicportal.io"]
    assert nads["rules"][0]["operations"] == ["CREATE", "UPDATE"]
    assert nads["rules"][0]["resources"] == ["network-attachment-definitions"]
    (pods,) = [w for w in configuration["webhooks"] if w["name"] == "pods.nicportal.io"]
    assert pods["rules"][0]["operations"] == ["CREATE"] and pods["rules"][0]["resources"] == [
        "pods"
    ]


def test_the_webhook_path_is_the_one_its_server_serves():
    from django.urls import resolve

    from inventory import webhook

    assert resolve("/validate", urlconf="nicportal.urls_webhook").func is webhook.validate


def test_the_webhook_tls_comes_from_the_secret_cert_manager_writes():
    configuration = find("ValidatingWebhookConfiguration", "nicportal")
    certificates = [
        doc
        for doc in yaml.safe_load_all((MANIFESTS / "cert-manager" / "certificate.yaml").read_text())
        if doc["kind"] == "Certificate"
    ]
    (certificate,) = certificates
    namespace, name = configuration["metadata"]["annotations"][
        "cert-manager.io/inject-ca-from"
    ].split("/")
    assert (namespace, name) == (
        certificate["metadata"]["namespace"],
        certificate["metadata"]["name"],
    )
    pod = find("Deployment", "nicportal-webhook")["spec"]["template"]["spec"]
    (tls,) = [v for v in pod["volumes"] if v["name"] == "tls"]
    assert tls["secret"]["secretName"] == certificate["spec"]["secretName"]
    assert "nicportal-webhook.nicportal.svc" in certificate["spec"]["dnsNames"]
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]
    assert container["command"][:3] == ["gunicorn", "-c", "python:nicportal.webhook_gunicorn"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"]["scheme"] == "HTTPS"
