"""The cluster registry without a lab: per-cluster agent keys, hints that find their cluster by
key, a cluster's API outage that marks only its own NICs unknown, the sweep's fan-out, /readyz
and /metrics per cluster, and `manage.py cluster`. (Two real lab clusters in one portal:
tests/lab/test_two_clusters.py.)"""

from __future__ import annotations

import io
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from inventory import tasks
from inventory.clients.agents import AgentClient, AgentKeyring
from inventory.models import Cluster, Interface, Node
from inventory.services import cluster_clients, polling
from inventory.sync import reach
from inventory.sync.verdicts import refresh_node_ownership
from nodeagent import auth
from tests.factories import make_interface, make_node, make_user

pytestmark = pytest.mark.django_db

MASTER = "registry-tests-master-key-0123456789abcdef"
OTHER_MASTER = "registry-tests-second-master-0123456789abcd"


@pytest.fixture
def two(settings, tmp_path):
    """The default cluster (settings) and a registered one with its own master key file, each
    with a node called n1."""
    settings.AGENT_MASTER_KEY = MASTER
    settings.AGENT_MASTER_KEY_PREVIOUS = ""
    settings.CLUSTER_NAME = "default"
    key_file = tmp_path / "second-master"
    key_file.write_text(OTHER_MASTER + "\n")
    first = Cluster.objects.create(name="default")
    second = Cluster.objects.create(
        name="second", kubeconfig=str(tmp_path / "kubeconfig"), agent_master_key_file=str(key_file)
    )
    return first, second


def verdicts(cluster: Cluster) -> list[tuple]:
    return sorted(
        Interface.objects.filter(node__cluster=cluster).values_list(
            "pk", "state", "reason", "holder", "state_changed_at"
        )
    )


def test_the_default_cluster_keeps_the_settings_keys_and_a_registered_one_uses_its_own(two):
    first, second = two
    assert AgentKeyring.for_cluster(first).node_keys("n1") == (
        AgentKeyring.from_settings().node_keys("n1")
    )
    assert AgentKeyring.for_cluster(second).node_keys("n1") == [
        auth.derive_node_key(OTHER_MASTER.encode(), cluster="second", node="n1")
    ]
    # Without a key file of its own, a registered cluster derives from the settings' master,
    # with its own name: still not the default cluster's key for a node of the same name.
    second.agent_master_key_file = ""
    shared = AgentKeyring.for_cluster(second).node_keys("n1")
    assert shared == [auth.derive_node_key(MASTER.encode(), cluster="second", node="n1")]
    assert shared != AgentKeyring.for_cluster(first).node_keys("n1")


def test_a_cluster_whose_key_file_is_missing_or_short_says_so_on_every_poll(two, tmp_path):
    _, second = two
    second.agent_master_key_file = str(tmp_path / "absent")
    result = AgentClient.for_cluster(second).fetch("http://127.0.0.1:9", node="n1")
    assert result.status == "error"
    assert result.error.startswith("cluster second: cannot read its agent master key file")
    short = tmp_path / "short"
    short.write_text("too-short")
    second.agent_master_key_file = str(short)
    result = AgentClient.for_cluster(second).fetch("http://127.0.0.1:9", node="n1")
    assert "shorter than 32 characters" in result.error


def post_hint(client, node: str, key: bytes):
    body = json.dumps({"node": node}).encode()
    header, _ = auth.sign_request(
        [key],
        direction=auth.AGENT_TO_PORTAL,
        method="POST",
        path="/api/v1/agent-hints/",
        node=node,
        body=body,
    )
    return client.post(
        "/api/v1/agent-hints/", body, content_type="application/json", HTTP_AUTHORIZATION=header
    )


def test_a_hint_refreshes_the_same_named_node_of_the_cluster_whose_key_signed_it(
    two, client, monkeypatch
):
    first, second = two
    ours, theirs = make_node(first, name="n1"), make_node(second, name="n1")
    queued: list = []
    monkeypatch.setattr(tasks.refresh_node, "apply_async", lambda args, **kw: queued.append(args))

    key = auth.derive_node_key(OTHER_MASTER.encode(), cluster="second", node="n1")
    assert post_hint(client, "n1", key).status_code == 202
    cache.clear()  # the debounce of the next hint
    key = auth.derive_node_key(MASTER.encode(), cluster="default", node="n1")
    assert post_hint(client, "n1", key).status_code == 202
    assert queued == [(theirs.pk,), (ours.pk,)]

    # A disabled cluster's agents are not heard; nor is a key for a cluster nobody registered.
    second.enabled = False
    second.save()
    key = auth.derive_node_key(OTHER_MASTER.encode(), cluster="second", node="n1")
    refused = post_hint(client, "n1", key)
    assert (refused.status_code, refused.json()["reason"]) == (401, "unknown_key")
    key = auth.derive_node_key(MASTER.encode(), cluster="elsewhere", node="n1")
    assert post_hint(client, "n1", key).json()["reason"] == "unknown_key"
    assert len(queued) == 2


def test_an_unreachable_cluster_marks_its_own_nics_unknown_and_nothing_else(two, settings, client):
    first, second = two
    for cluster in (first, second):
        node = make_node(cluster, name="n1")
        make_interface(node, name="eth0", pci_address="0000:01:00.0", driver="ice", kind="physical")
        make_interface(node, name="eth1", pci_address="0000:01:00.1", driver="ice", kind="physical")
    for node in Node.objects.all():
        refresh_node_ownership(node)
    first_before, second_before = verdicts(first), verdicts(second)
    assert {state for _, state, *_ in second_before} == {"free"}

    # A failure inside the grace period (the last read that worked is recent) changes nothing.
    settings.CLUSTER_STALE_AFTER = 600.0
    now = timezone.now()
    reach.note_cluster_read(second, now - timedelta(seconds=30))
    assert reach.note_cluster_failure(second, "connection refused", now).verdicts_changed == 0
    assert verdicts(second) == second_before

    # Past it: the cluster's own NICs turn unknown, with the reason; the other's stay.
    later = now + timedelta(seconds=700)
    stats = reach.note_cluster_failure(second, "connection refused", later)
    assert stats.verdicts_changed == 2
    second.refresh_from_db()
    assert second.unreachable_since == later
    after = verdicts(second)
    assert {state for _, state, *_ in after} == {"unknown"}
    assert all("the API of cluster second has not answered since" in row[2] for row in after)
    assert verdicts(first) == first_before
    # Another failure writes nothing more.
    assert reach.note_cluster_failure(second, "still refused", later).verdicts_changed == 0

    # /readyz and /metrics say which cluster.
    body = client.get("/readyz").json()["checks"]["clusters"]
    assert body["status"] == "degraded"
    assert body["clusters"]["second"]["unreachable_since"] == later.isoformat()
    assert "unreachable_since" not in body["clusters"]["default"]
    metrics = client.get("/metrics").content.decode()
    assert 'nicportal_cluster_unreachable{cluster="second"} 1.0' in metrics
    assert 'nicportal_cluster_unreachable{cluster="default"} 0.0' in metrics

    # Every page's header says so too.
    client.force_login(make_user())
    header = client.get(reverse("inventory:sweep-status")).content.decode()
    assert 'data-testid="clusters-unreachable">1 cluster unreachable</span>' in header
    assert "The API of second has not answered" in header

    # The API answers again: judged again, back to free.
    reach.note_cluster_read(second, later + timedelta(seconds=5))
    second.refresh_from_db()
    assert second.unreachable_since is None
    assert {state for _, state, *_ in verdicts(second)} == {"free"}
    assert verdicts(first) == first_before


def test_the_sweep_queues_one_sweep_per_enabled_registered_cluster(two, monkeypatch):
    first, second = two
    Cluster.objects.create(name="forgotten")  # a row without credentials: never swept
    Cluster.objects.create(name="off", in_cluster=True, enabled=False)
    queued: list = []
    monkeypatch.setattr(tasks.sweep_cluster, "apply_async", lambda args, **kw: queued.append(args))
    assert tasks.sweep() == {"clusters": ["default", "second"]}
    assert queued == [(first.pk,), (second.pk,)]


def test_a_portal_without_a_registry_sweeps_its_default_cluster_alone(settings):
    settings.CLUSTER_NAME = "default"
    targets = cluster_clients.sweep_targets()
    assert [cluster.name for cluster in targets] == ["default"]
    assert cluster_clients.is_default(targets[0])


def test_a_registered_cluster_whose_credentials_do_not_load_fails_its_own_sweep(two):
    first, second = two  # second's kubeconfig file does not exist
    report = polling.sweep_inline(cluster=second)
    assert report.cluster_error.startswith("cannot load the kubeconfig")
    second.refresh_from_db()
    assert second.last_error == report.cluster_error
    first.refresh_from_db()
    assert first.last_error == ""


def test_the_registry_command_registers_lists_and_refuses_what_it_cannot_use(
    settings, monkeypatch, tmp_path
):
    settings.CLUSTER_NAME = "default"
    with pytest.raises(CommandError, match="give --kubeconfig"):
        call_command("cluster", "add", "elsewhere")
    with pytest.raises(CommandError, match="not a cluster name"):
        call_command("cluster", "add", "Bad_Name", "--in-cluster")
    with pytest.raises(CommandError, match="needs --agent-master-key-file"):
        call_command(
            "cluster", "add", "x", "--in-cluster", "--agent-master-key-previous-file", "/k"
        )
    with pytest.raises(CommandError, match="namespace/name"):
        call_command("cluster", "add", "x", "--kubeconfig-secret", "no-namespace")
    assert not Cluster.objects.filter(name__in=["elsewhere", "x"]).exists()

    out = io.StringIO()
    call_command(
        "cluster", "add", "remote", "--kubeconfig-secret", "nicportal/remote-kc", stdout=out
    )
    call_command("cluster", "disable", "remote", stdout=out)
    assert out.getvalue().splitlines() == ["cluster remote registered", "cluster remote disabled"]
    out = io.StringIO()
    call_command("cluster", "list", stdout=out)
    lines = out.getvalue().splitlines()
    remote = next(line for line in lines if line.startswith("remote"))
    assert "secret nicportal/remote-kc" in remote
    assert remote.endswith("not swept")
    default = next(line for line in lines if line.startswith("default"))
    assert default.endswith("\tswept")
    assert "settings" in default
    stored = Cluster.objects.get(name="remote")
    assert (stored.kubeconfig_secret, stored.enabled) == ("nicportal/remote-kc", False)

    # Paths are stored absolute: web, worker and beat may run from another directory.
    monkeypatch.chdir(tmp_path)
    call_command("cluster", "add", "remote", "--kubeconfig", "kc", stdout=io.StringIO())
    stored.refresh_from_db()
    assert (stored.kubeconfig, stored.kubeconfig_secret) == (str(tmp_path / "kc"), "")


def test_agentkey_prints_a_registered_clusters_node_keys(two):
    out = io.StringIO()
    call_command("agentkey", "n1", "--cluster", "second", stdout=out)
    expected = auth.derive_node_key(OTHER_MASTER.encode(), cluster="second", node="n1")
    assert out.getvalue().strip() == auth.format_node_key(expected)
    with pytest.raises(CommandError, match="no cluster named 'nowhere'"):
        call_command("agentkey", "n1", "--cluster", "nowhere")


def test_the_clusters_api_shows_the_registry_without_paths(two, client):
    client.force_login(make_user())
    rows = {row["name"]: row for row in client.get("/api/v1/clusters/").json()["results"]}
    assert rows["second"]["credentials"] == "kubeconfig"
    assert rows["default"]["credentials"] == ""
    assert rows["second"]["enabled"] is True
    assert rows["second"]["unreachable_since"] is None
    text = json.dumps(rows)
    assert "second-master" not in text  # the key file's path
    assert "/kubeconfig" not in text


def test_staff_register_a_cluster_in_the_admin_and_bad_entries_are_refused(client, settings):
    settings.CLUSTER_NAME = "default"
    staff = make_user(staff=True)
    staff.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="inventory",
            codename__in=["add_cluster", "change_cluster", "view_cluster"],
        )
    )
    client.force_login(staff)
    url = "/admin/inventory/cluster/add/"
    form = {"name": "east", "enabled": "on", "kubeconfig": "/etc/nicportal/east/kubeconfig"}
    both = client.post(url, {**form, "kubeconfig_secret": "nicportal/east"})
    assert both.status_code == 200
    assert "Give one of kubeconfig, kubeconfig_secret and in_cluster" in both.content.decode()
    bad_name = client.post(url, {**form, "name": "East_1"})
    assert "Lower-case letters, digits" in bad_name.content.decode()
    bad_secret = client.post(url, {**form, "kubeconfig": "", "kubeconfig_secret": "east"})
    assert "namespace/name of the Secret" in bad_secret.content.decode()
    assert not Cluster.objects.filter(name="east").exists()

    assert client.post(url, form).status_code == 302
    east = Cluster.objects.get(name="east")
    assert (east.credentials, east.kubeconfig) == ("kubeconfig", "/etc/nicportal/east/kubeconfig")
    assert [c.name for c in cluster_clients.sweep_targets()] == ["default", "east"]
    # The name is set once: the change form shows it read-only.
    change = client.get(f"/admin/inventory/cluster/{east.pk}/change/").content.decode()
    assert 'name="name"' not in change
