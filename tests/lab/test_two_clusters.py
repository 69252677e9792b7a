"""Two lab clusters in one portal: the session's lab is the default cluster (`lab`, reached as
the settings say), a second lab runs beside it (its own etcd, kube-apiserver, namespaces and
agents, keys derived for the cluster name `second`) and is registered with `manage.py cluster
add`. Both labs lay out the same node names, so every check below also shows that the same node
name in two clusters is two nodes, each answering to its own cluster's keys.

"API down" is the second lab's real kube-apiserver stopped with SIGSTOP: connections are
accepted and never answered, as a hung or partitioned API server does; SIGCONT brings it back."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import kubernetes
import pytest
from celery.contrib.testing.worker import start_worker
from django.core.management import CommandError, call_command
from django.utils import timezone

from inventory import tasks
from inventory.clients.agents import AgentKeyring
from inventory.models import Cluster, HistoryEntry, Interface, NetworkAttachment, Node
from inventory.services import cluster_clients, nads, polling, reservations
from lab import control
from lab.handle import LabHandle
from lab.state import state_dir
from nicportal.celery import app
from nodeagent import auth
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.lab, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def second_lab(lab_requirements) -> Iterator[LabHandle]:
    name = f"pw{os.getpid()}"
    try:
        state = control.up(name, cluster_name="second")
    except Exception:
        control.down(name)
        raise
    handle = LabHandle(state)
    try:
        yield handle
    finally:
        handle.close()
        control.down(name)
        shutil.rmtree(state_dir(name), ignore_errors=True)


@pytest.fixture
def registered(lab, second_lab, settings):
    """The portal watching the first lab as its default cluster, the second lab registered."""
    lab.reset()
    second_lab.reset()
    settings.KUBECONFIG = str(lab.portal_kubeconfig)
    settings.AGENT_MASTER_KEY = lab.agent_master_key
    settings.CLUSTER_NAME = "lab"
    settings.AGENT_NAMESPACE = "nicportal"
    settings.MULTUS_VERSION = ""
    settings.KUBE_TIMEOUT = 2.0
    # Any failed read marks the cluster unreachable at once (the default waits 3 sweeps).
    settings.CLUSTER_STALE_AFTER = 0.0
    polling.forget_cluster_reads()
    out = io.StringIO()
    call_command(
        "cluster",
        "add",
        "second",
        "--kubeconfig",
        str(second_lab.portal_kubeconfig),
        "--agent-master-key-file",
        str(second_lab.agent_master_key_file),
        stdout=out,
    )
    assert out.getvalue().strip() == "cluster second registered"
    yield
    polling.forget_cluster_reads()


@pytest.fixture
def two_clusters(registered):
    """Both clusters in the inventory, one sweep each."""
    reports = polling.sweep_all(workers=4)
    assert {name: report.cluster_error for name, report in reports.items()} == {
        "lab": "",
        "second": "",
    }
    assert {name: report.agents_failed for name, report in reports.items()} == {
        "lab": 0,
        "second": 0,
    }
    return Cluster.objects.get(name="lab"), Cluster.objects.get(name="second")


def apiserver_pid(handle: LabHandle) -> int:
    """The lab's kube-apiserver process (its command line names the lab's state directory)."""
    directory = str(handle.state.directory)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            words = (entry / "cmdline").read_bytes().decode().split("\0")
        except OSError:
            continue
        if words and words[0].endswith("kube-apiserver") and any(directory in w for w in words):
            return int(entry.name)
    raise AssertionError(f"no kube-apiserver of {directory}")


@contextlib.contextmanager
def api_stopped(handle: LabHandle) -> Iterator[None]:
    pid = apiserver_pid(handle)
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


def rows(cluster: Cluster) -> dict:
    """Everything the inventory stores about one cluster that a sweep could change."""
    return {
        "cluster": Cluster.objects.filter(pk=cluster.pk)
        .values("unreachable_since", "last_error", "api_url", "enabled")
        .get(),
        "nodes": sorted(
            Node.objects.filter(cluster=cluster).values_list(
                "pk", "name", "stale", "agent_error", "ready", "in_cluster", "agent_url"
            )
        ),
        "interfaces": sorted(
            Interface.objects.filter(node__cluster=cluster).values_list(
                "pk",
                "node_name",
                "name",
                "state",
                "reason",
                "holder",
                "breach",
                "present",
                "facts_digest",
                "state_changed_at",
                "last_seen_at",
            )
        ),
        "history": HistoryEntry.objects.filter(node__cluster=cluster).count(),
    }


def test_two_labs_are_two_clusters_with_the_same_node_names_and_their_own_keys(
    two_clusters, lab, second_lab
):
    first, second = two_clusters
    names = {node.name for node in lab.nodes}
    assert names == {node.name for node in second_lab.nodes}
    for cluster in (first, second):
        stored = set(Node.objects.filter(cluster=cluster).values_list("name", flat=True))
        assert stored == names
        free = Interface.objects.filter(node__cluster=cluster, name="eth1", state="free")
        assert free.count() == len(names)
    # The agents of `second` hold keys derived from the second lab's master for `second`; the
    # portal derived the same ones (every agent answered above), and they are not `lab`'s.
    node = sorted(names)[0]
    ours = AgentKeyring.for_cluster(second).node_keys(node)[0]
    assert ours == second_lab.agent_key(node)
    assert ours != AgentKeyring.for_cluster(first).node_keys(node)[0]
    assert ours != auth.derive_node_key(
        second_lab.agent_master_key.encode(), cluster="lab", node=node
    )


def test_a_sweep_while_the_other_clusters_api_is_down_changes_nothing_in_the_other(
    two_clusters, second_lab, client
):
    first, second = two_clusters
    first_before = rows(first)
    with api_stopped(second_lab):
        report = polling.sweep_inline(cluster=second, workers=4)
        assert report.cluster_error
        # Its agents still answer: their facts stay fresh, but nobody knows which pods hold NICs.
        assert report.agents_failed == 0
        second.refresh_from_db()
        assert second.unreachable_since is not None
        verdicts = set(
            Interface.objects.filter(node__cluster=second).values_list("state", flat=True)
        )
        assert verdicts == {"unknown"}
        reason = Interface.objects.filter(node__cluster=second, name="eth1").first().reason
        assert reason.startswith("the API of cluster second has not answered since")
        assert rows(first) == first_before

        # The healthy cluster's sweep meanwhile: its own rows as they were, the other's untouched.
        second_before = rows(second)
        report = polling.sweep_inline(cluster=first, workers=4)
        assert (report.cluster_error, report.agents_failed) == ("", 0)
        assert rows(first) == first_before
        assert rows(second) == second_before

        checks = client.get("/readyz").json()["checks"]["clusters"]
        assert checks["status"] == "degraded"
        assert checks["clusters"]["lab"]["status"] == "ok"
        assert checks["clusters"]["second"]["status"] == "degraded"
        assert checks["clusters"]["second"]["unreachable_since"]
        metrics = client.get("/metrics").content.decode()
        assert 'nicportal_cluster_unreachable{cluster="second"} 1.0' in metrics
        assert 'nicportal_cluster_unreachable{cluster="lab"} 0.0' in metrics
        unknown = Interface.objects.filter(node__cluster=second).count()
        assert f'nicportal_interfaces{{cluster="second",state="unknown"}} {unknown}.0' in metrics
        assert 'nicportal_interfaces{cluster="lab",state="unknown"} 0.0' in metrics

    # The API answers again: the cluster's NICs are judged again; the other still untouched.
    report = polling.sweep_inline(cluster=second, workers=4)
    assert report.cluster_error == ""
    second.refresh_from_db()
    assert second.unreachable_since is None
    free = Interface.objects.filter(node__cluster=second, name="eth1", state="free")
    assert free.count() == Node.objects.filter(cluster=second).count()
    assert rows(first) == first_before
    assert client.get("/readyz").json()["checks"]["clusters"]["status"] == "ok"


def test_the_fleet_page_and_the_api_filter_by_cluster(two_clusters, client):
    first, second = two_clusters
    client.force_login(make_user())
    api = client.get("/api/v1/interfaces/", {"cluster": "second", "page_size": 1000}).json()
    clusters = {row["cluster"] for row in api["results"]}
    assert clusters == {"second"}
    assert len(api["results"]) == Interface.objects.filter(node__cluster=second).count()
    nodes = client.get("/api/v1/nodes/", {"cluster": "lab"}).json()["results"]
    assert {row["cluster"] for row in nodes} == {"lab"}
    assert len(nodes) == Node.objects.filter(cluster=first).count()

    page = client.get("/", {"cluster": "second", "per_page": 200})
    assert page.status_code == 200
    shown = list(page.context["interfaces"])
    assert shown and {row.node.cluster.name for row in shown} == {"second"}
    html = page.content.decode()
    assert 'data-testid="cluster-filter"' in html
    assert '<option value="second" selected>second</option>' in html
    assert '<td data-testid="cluster">second</td>' in html
    assert '<td data-testid="cluster">lab</td>' not in html
    everything = client.get("/", {"per_page": 200})
    cells = everything.content.decode()
    assert '<td data-testid="cluster">lab</td>' in cells
    assert '<td data-testid="cluster">second</td>' in cells


def test_a_hint_refreshes_the_node_of_the_cluster_whose_key_signed_it(
    two_clusters, second_lab, client, monkeypatch
):
    """The same node name in both clusters: a hint signed with the second cluster's key for it
    is queued for the second cluster's node, never the first's."""
    first, second = two_clusters
    queued: list = []
    monkeypatch.setattr(tasks.refresh_node, "apply_async", lambda args, **kw: queued.append(args))
    node = sorted(n.name for n in second_lab.nodes)[0]
    body = json.dumps({"node": node}).encode()
    header, _ = auth.sign_request(
        [second_lab.agent_key(node)],
        direction=auth.AGENT_TO_PORTAL,
        method="POST",
        path="/api/v1/agent-hints/",
        node=node,
        body=body,
    )
    answer = client.post(
        "/api/v1/agent-hints/", body, content_type="application/json", HTTP_AUTHORIZATION=header
    )
    assert answer.status_code == 202, answer.content
    assert queued == [(Node.objects.get(cluster=second, name=node).pk,)]


def encoded(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_a_cluster_reached_through_a_kubeconfig_kept_in_a_secret(
    two_clusters, lab, second_lab, settings
):
    """The second cluster's kubeconfig in a Secret of the portal's own cluster (the first lab),
    read through the home cluster's client: never in the database, never in a file of ours."""
    _, second = two_clusters
    # The home client must be allowed to read the Secret: the shipped RBAC does not grant it
    # (docs/CLUSTERS.md says what to add), the lab's admin can.
    settings.KUBECONFIG = str(lab.kubeconfig)
    core = kubernetes.client.CoreV1Api(
        kubernetes.config.new_client_from_config(str(lab.kubeconfig))
    )
    secret = kubernetes.client.V1Secret(
        metadata=kubernetes.client.V1ObjectMeta(name="second-kubeconfig"),
        data={"kubeconfig": encoded(second_lab.portal_kubeconfig.read_bytes())},
    )
    core.create_namespaced_secret("nicportal", secret)
    try:
        call_command(
            "cluster",
            "add",
            "second",
            "--kubeconfig-secret",
            "nicportal/second-kubeconfig",
            "--agent-master-key-file",
            str(second_lab.agent_master_key_file),
            stdout=io.StringIO(),
        )
        second.refresh_from_db()
        assert (second.credentials, second.kubeconfig) == ("secret", "")
        polling.forget_cluster_reads()
        report = polling.sweep_inline(cluster=second, workers=4)
        assert (report.cluster_error, report.agents_failed) == ("", 0)
        assert report.nodes == len(second_lab.nodes)

        # The Secret is read again every CLUSTER_SECRET_TTL; the client (and its watch) is made
        # again only when the kubeconfig in it changed.
        settings.CLUSTER_SECRET_TTL = 0.001
        client = cluster_clients.cluster_client(second)
        time.sleep(0.01)
        assert cluster_clients.cluster_client(second) is client
        changed = second_lab.portal_kubeconfig.read_bytes() + b"\n# rotated\n"
        core.patch_namespaced_secret(
            "second-kubeconfig", "nicportal", {"data": {"kubeconfig": encoded(changed)}}
        )
        time.sleep(0.01)
        rotated = cluster_clients.cluster_client(second)
        assert rotated is not client
        assert polling.sweep_inline(cluster=second, workers=4).cluster_error == ""

        # A Secret without the key: this cluster's sweep says which Secret and which key, at
        # once (the last kubeconfig read is kept only while the home cluster does not answer).
        core.patch_namespaced_secret(
            "second-kubeconfig", "nicportal", {"data": {"kubeconfig": None, "other": "eA=="}}
        )
        time.sleep(0.01)
        report = polling.sweep_inline(cluster=second, workers=4)
        assert report.cluster_error == (
            "secret nicportal/second-kubeconfig has no 'kubeconfig' key"
        )
    finally:
        core.delete_namespaced_secret("second-kubeconfig", "nicportal")
        core.api_client.close()


def test_a_reservation_is_published_on_the_node_of_its_own_cluster(two_clusters, lab, second_lab):
    first, second = two_clusters
    team = make_team("netlab-two")
    owner = make_user(teams=[team])
    nic = Interface.objects.get(node__cluster=second, node__name="node-a", name="eth1")
    reservations.reserve(
        interface_id=nic.pk,
        team=team,
        user=owner,
        purpose="two clusters",
        expires_at=timezone.now() + timedelta(days=1),
    )

    def annotation(handle: LabHandle) -> str | None:
        api = kubernetes.config.new_client_from_config(str(handle.kubeconfig))
        try:
            node = kubernetes.client.CoreV1Api(api).read_node("node-a")
        finally:
            api.close()
        return (node.metadata.annotations or {}).get(reservations.ANNOTATION_KEY)

    published = json.loads(annotation(second_lab) or "[]")
    assert [(row["interface"], row["team"]) for row in published] == [("eth1", "netlab-two")]
    assert annotation(lab) is None  # the same-named node of the other cluster
    first_nic = Interface.objects.get(node__cluster=first, node__name="node-a", name="eth1")
    assert first_nic.state == "free"


def test_the_celery_sweep_runs_one_sweep_per_cluster_on_the_same_workers(registered, lab):
    """A real worker on Redis: beat's `sweep` queues one `sweep_cluster` per cluster, whose node
    batches the same worker takes; both clusters end up in the inventory."""
    broker = os.environ.get("CELERY_BROKER_URL", "")
    old = (app.conf.broker_url, app.conf.task_always_eager, app.conf.broker_transport_options)
    app.conf.broker_url = broker if broker.startswith("redis://") else "redis://127.0.0.1:6379/0"
    app.conf.task_always_eager = False
    app.conf.broker_transport_options = {}
    try:
        with start_worker(
            app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            shutdown_timeout=10,
            loglevel="WARNING",
        ):
            tasks.sweep.delay()  # results are not kept (CELERY_TASK_IGNORE_RESULT)
            names = {node.name for node in lab.nodes}

            def both_filled() -> bool:
                free = Interface.objects.filter(name="eth1", state="free")
                return {
                    cluster: set(
                        free.filter(node__cluster__name=cluster).values_list("node_name", flat=True)
                    )
                    for cluster in ("lab", "second")
                } == {"lab": names, "second": names}

            deadline = time.monotonic() + 60
            while not both_filled() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert both_filled()
    finally:
        app.conf.broker_url, app.conf.task_always_eager, app.conf.broker_transport_options = old
    for name in ("lab", "second"):
        cluster = Cluster.objects.get(name=name)
        assert (cluster.last_error, cluster.unreachable_since) == ("", None)
        assert cluster.last_sweep_ok_at is not None


def test_manage_py_poll_sweeps_every_cluster(registered):
    out = io.StringIO()
    call_command("poll", "--quiet", stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["cluster lab", "cluster second"]
    assert all("sweep done in" in line and "0 failed" in line for line in lines)
    answered = [line.split("s: ", 1)[1].split(";")[0] for line in lines]  # "3 nodes, 3 agents…"
    out = io.StringIO()
    call_command("poll", "--quiet", "--cluster", "second", stdout=out)
    assert out.getvalue().startswith("cluster second: sweep done in")
    out = io.StringIO()
    call_command("poll", "--quiet", "--processes", "2", "--workers", "2", stdout=out)
    lines = out.getvalue().splitlines()
    assert [line.split(":")[0] for line in lines] == ["cluster lab", "cluster second"]
    assert all("sweep done in" in line and "0 failed" in line for line in lines)
    assert [line.split("s: ", 1)[1].split(";")[0] for line in lines] == answered
    with pytest.raises(CommandError, match="at least 1"):
        call_command("poll", "--quiet", "--processes", "0")


def nad_in(handle: LabHandle, namespace: str, name: str) -> bool:
    api = kubernetes.config.new_client_from_config(str(handle.kubeconfig))
    try:
        kubernetes.client.CustomObjectsApi(api).get_namespaced_custom_object(
            "k8s.cni.cncf.io", "v1", namespace, "network-attachment-definitions", name
        )
    except kubernetes.client.exceptions.ApiException as exc:
        if exc.status == 404:
            return False
        raise
    finally:
        api.close()
    return True


def test_a_nad_of_the_second_clusters_nic_is_created_in_the_second_clusters_api(
    two_clusters, lab, second_lab, client
):
    """The same node and NIC names in both labs: by id, or by name with `cluster`, the NAD is
    created in the second lab's kube-apiserver and stored with the second cluster; the first
    lab's API never sees it."""
    first, second = two_clusters
    staff = make_user(staff=True)
    nic = Interface.objects.get(node__cluster=second, node__name="node-a", name="eth1")
    [row] = nads.apply(user=staff, namespace="default", name="across", interface_ids=[nic.pk])
    assert row.cluster == second
    assert nad_in(second_lab, "default", "across")
    assert not nad_in(lab, "default", "across")

    client.force_login(staff)
    body = {"namespace": "default", "name": "across-2", "interfaces": ["node-a/eth1"]}
    answer = client.post(
        "/api/v1/nads/apply/", {**body, "cluster": "second"}, content_type="application/json"
    )
    assert answer.status_code == 201, answer.content
    assert answer.json()[0]["cluster"] == "second"
    assert nad_in(second_lab, "default", "across-2")
    assert not nad_in(lab, "default", "across-2")

    # NICs of both clusters in one NAD: refused, created nowhere.
    theirs = Interface.objects.get(node__cluster=first, node__name="node-b", name="eth1")
    mixed = {"namespace": "default", "name": "across-3", "interfaces": [nic.pk, theirs.pk]}
    refused = client.post("/api/v1/nads/apply/", mixed, content_type="application/json")
    assert refused.status_code == 400 and list(refused.json()) == ["interfaces"]
    assert not nad_in(second_lab, "default", "across-3")
    assert not nad_in(lab, "default", "across-3")

    # The next sweeps find each NAD in the second cluster only.
    polling.sweep_all(workers=4)
    stored = NetworkAttachment.objects.filter(name__startswith="across", in_cluster=True)
    assert sorted(stored.values_list("cluster__name", "name")) == [
        ("second", "across"),
        ("second", "across-2"),
    ]
