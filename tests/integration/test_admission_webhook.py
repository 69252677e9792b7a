"""The admission webhook through its door (POST /validate on the webhook server's URLconf), with
the inventory in the database (PostgreSQL in CI) and the counters in Redis: the AdmissionReview
v1 contract (uid echo, allowed, status, warnings, dryRun, UPDATE, malformed objects, unknown
resources, bodies that are not JSON), the decisions, the records, the metrics and the number of
queries a review costs."""

from __future__ import annotations

import json
import time
import uuid

import pytest
from django.core.cache import cache
from django.db import OperationalError, connection
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from inventory.choices import OwnershipState
from inventory.models import AdmissionRecord, NetworkAttachment, TeamNamespace
from inventory.read import admission as admission_facts
from inventory.rules.admission import decide
from inventory.services import admission, nads
from tests.factories import (
    make_cluster,
    make_interface,
    make_node,
    make_reservation,
    make_team,
    make_user,
)
from tests.ops.servers import free_port

pytestmark = [pytest.mark.urls("nicportal.urls_webhook"), pytest.mark.django_db]

CNI = {"host_device": {"version": "1.1.1", "supported_versions": ["0.3.1", "0.4.0", "1.0.0"]}}
SEED_CONFIG = (
    '{\n  "cniVersion": "0.3.1",\n  "name": "macvlan-conf",\n  # the uplink\n'
    '  "type": "host-device",\n  "device": "eth0"\n}'
)
NETWORKS = "k8s.v1.cni.cncf.io/networks"


def host_device(name: str, **selector: str) -> str:
    return json.dumps({"cniVersion": "0.3.1", "name": name, "type": "host-device", **selector})


@pytest.fixture
def inventory(settings):
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = "3.9"
    settings.WEBHOOK_MODE = "enforce"
    settings.WEBHOOK_FAILURE_POLICY = "Ignore"
    cluster = make_cluster(name="prod")
    a = make_node(cluster, name="node-a", cni=CNI, labels={"kubernetes.io/hostname": "node-a"})
    b = make_node(cluster, name="node-b", cni=CNI, labels={"kubernetes.io/hostname": "node-b"})
    platform, ml = make_team("platform"), make_team("ml")
    TeamNamespace.objects.create(team=platform, pattern="platform-*")
    TeamNamespace.objects.create(team=ml, pattern="ml")
    rows = {
        "eth0": make_interface(
            a, name="eth0", state=OwnershipState.SYSTEM, reason="carries the default route"
        ),
        "eth1": make_interface(a, name="eth1", mac="aa:bb:cc:00:00:01"),
        "eth2": make_interface(
            a, name="eth2", state=OwnershipState.RESERVED, holder="team platform"
        ),
        "eth3": make_interface(
            a,
            name="eth3",
            state=OwnershipState.POD,
            holder="pod default/web-0",
            reason="moved into pod default/web-0 by host-device",
            has_netdev=False,
        ),
        "b-eth1": make_interface(b, name="eth1"),
        "b-eth2": make_interface(b, name="eth2"),
    }
    make_reservation(rows["eth2"], platform)
    for name, config in {
        "fast": host_device("fast", device="eth2"),
        "free": host_device("free", device="eth1"),
        "busy": host_device("busy", device="eth3"),
        "bymac": host_device("bymac", hwaddr="AA:BB:CC:00:00:01"),
        "macvlan": json.dumps({"cniVersion": "0.3.1", "name": "macvlan", "type": "macvlan"}),
    }.items():
        NetworkAttachment.objects.create(
            cluster=cluster, namespace="default", name=name, config=config
        )
    admission_facts.INDEX.background = False
    admission_facts.INDEX.clear()
    yield {"cluster": cluster, "platform": platform, **rows}
    admission_facts.INDEX.clear()
    admission_facts.INDEX.background = True


def review(resource: str, obj, *, operation="CREATE", namespace="default", **request) -> dict:
    group, _, plural = resource.rpartition("/")
    metadata = obj.get("metadata") if isinstance(obj, dict) else None
    name = metadata.get("name", "") if isinstance(metadata, dict) else ""
    body = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": group, "version": "v1", "kind": "X"},
            "resource": {"group": group, "version": "v1", "resource": plural},
            "operation": operation,
            "namespace": namespace,
            "name": name,
            "object": obj,
            "userInfo": {"username": "alice"},
            "dryRun": False,
            **request,
        },
    }
    return body


NAD = "k8s.cni.cncf.io/network-attachment-definitions"
POD = "/pods"


def nad_object(name: str, config: str, **annotations) -> dict:
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": name, "namespace": "default", "annotations": annotations},
        "spec": {"config": config},
    }


def pod_object(name: str, networks: str, **spec) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "annotations": {NETWORKS: networks}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}], **spec},
    }


def post(client, body) -> dict:
    raw = json.dumps(body) if not isinstance(body, bytes) else body
    response = client.post("/validate", raw, content_type="application/json")
    assert response.status_code == 200, response.content
    answer = response.json()
    assert answer["apiVersion"] == "admission.k8s.io/v1" and answer["kind"] == "AdmissionReview"
    assert answer["response"]["uid"] == body["request"]["uid"]
    return answer["response"]


# --- the contract ---------------------------------------------------------------------------


def test_the_seeds_nad_is_denied_with_the_findings_code_field_and_fix(client, inventory):
    answer = post(client, review(NAD, nad_object("macvlan-conf", SEED_CONFIG)))
    assert answer["allowed"] is False
    status = answer["status"]
    assert status["code"] == 422 and status["reason"] == "Invalid"
    assert status["status"] == "Failure"
    assert status["message"].startswith("NICPortal: NAD default/macvlan-conf\nCONFIG_INVALID_JSON")
    (cause,) = status["details"]["causes"]
    assert cause["reason"] == "CONFIG_INVALID_JSON" and cause["field"] == "spec.config"
    assert "(`# the uplink`)" in cause["message"] and "Fix: Delete the comment" in cause["message"]
    record = AdmissionRecord.objects.get()
    assert (record.resource, record.name, record.codes, record.enforced) == (
        "network-attachment-definitions",
        "macvlan-conf",
        "CONFIG_INVALID_JSON",
        True,
    )
    assert record.username == "alice" and record.count == 1


def test_the_seeds_nad_without_its_comment_is_denied_for_eth0(client, inventory):
    config = SEED_CONFIG.replace("  # the uplink\n", "")
    answer = post(client, review(NAD, nad_object("macvlan-conf", config)))
    causes = {c["reason"]: c for c in answer["status"]["details"]["causes"]}
    assert "PRIMARY_NIC" in causes and "node-a/eth0" in causes["PRIMARY_NIC"]["message"]


def test_a_nad_built_by_nicportal_is_admitted(client, inventory):
    result = nads.render(
        user=make_user(staff=True),
        namespace="default",
        name="uplink",
        interface_ids=[inventory["b-eth2"].pk],
    )
    (rendered,) = result.nads
    answer = post(client, review(NAD, rendered.manifest))
    assert answer["allowed"] is True and "status" not in answer
    assert not AdmissionRecord.objects.exists()


def test_a_dry_run_is_answered_the_same_and_records_nothing(client, inventory):
    body = review(NAD, nad_object("macvlan-conf", SEED_CONFIG), dryRun=True)
    answer = post(client, body)
    assert answer["allowed"] is False and answer["status"]["code"] == 422
    assert not AdmissionRecord.objects.exists()


def test_an_update_keeps_old_errors_as_warnings_and_denies_new_ones(client, inventory):
    old = nad_object("legacy", host_device("legacy", device="eth0"))
    labelled = json.loads(json.dumps(old))
    labelled["metadata"]["labels"] = {"team": "x"}
    answer = post(client, review(NAD, labelled, operation="UPDATE", oldObject=old))
    assert answer["allowed"] is True
    assert any("already in the old object" in w for w in answer["warnings"])
    broken = nad_object("legacy", host_device("legacy"))
    answer = post(client, review(NAD, broken, operation="UPDATE", oldObject=old))
    assert answer["allowed"] is False
    assert [c["reason"] for c in answer["status"]["details"]["causes"]] == ["NO_SELECTOR"]


@pytest.mark.parametrize(
    "obj",
    ["not an object", [1, 2], {"metadata": "x"}, {"spec": {"config": 42}}, None],
)
def test_a_malformed_object_gets_a_well_formed_answer(client, inventory, obj):
    for resource in (NAD, POD):
        answer = post(client, review(resource, obj))
        assert answer["allowed"] is True


def test_a_pod_with_a_malformed_annotation_is_allowed_with_a_warning(client, inventory):
    answer = post(client, review(POD, pod_object("p", "default/fast@@x"), namespace="ml"))
    assert answer["allowed"] is True
    assert "could not read this pod" in answer["warnings"][0]


def test_an_unknown_resource_is_allowed_untouched(client, inventory):
    body = review("apps/deployments", {"metadata": {"name": "web"}})
    assert post(client, body) == {"uid": body["request"]["uid"], "allowed": True}
    body = review(POD, pod_object("p", "default/fast"), operation="DELETE", namespace="ml")
    assert post(client, body)["allowed"] is True


@pytest.mark.parametrize(
    "raw",
    [b"not json", b"", b"{}", b'{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}'],
)
def test_a_body_that_is_not_an_admission_review_is_a_clean_400(client, inventory, raw):
    response = client.post("/validate", raw, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]


def test_only_post_is_served(client, inventory):
    assert client.get("/validate").status_code == 405


# --- pods -----------------------------------------------------------------------------------


def test_a_pod_taking_another_teams_reserved_nic_is_denied_naming_the_team(client, inventory):
    for networks in (
        "default/fast@net1",
        json.dumps([{"name": "fast", "namespace": "default", "interface": "net1"}]),
    ):
        pod = pod_object("trainer-0", networks, nodeName="node-a")
        answer = post(client, review(POD, pod, namespace="ml"))
        assert answer["allowed"] is False
        status = answer["status"]
        assert status["code"] == 403 and status["reason"] == "Forbidden"
        (cause,) = status["details"]["causes"]
        assert cause["reason"] == "DEVICE_RESERVED"
        assert "reserved by team platform" in cause["message"]
        assert "namespace ml belongs to team ml, not to team platform" in cause["message"]
    assert AdmissionRecord.objects.get().count == 2


def test_the_reserving_teams_namespace_may_take_it(client, inventory):
    pod = pod_object("p", "default/fast", nodeSelector={"kubernetes.io/hostname": "node-a"})
    assert post(client, review(POD, pod, namespace="platform-dev"))["allowed"] is True


def test_a_nic_held_by_another_pod_is_denied_naming_the_pod(client, inventory):
    pod = pod_object("p", "default/busy", nodeName="node-a")
    answer = post(client, review(POD, pod, namespace="ml"))
    (cause,) = answer["status"]["details"]["causes"]
    assert cause["reason"] == "DEVICE_IN_POD" and "pod default/web-0" in cause["message"]


def test_placement_by_affinity_decides_which_nodes_count(client, inventory):
    # default/fast selects eth2: reserved on node-a, free on node-b.
    only_b = {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {
                        "matchExpressions": [
                            {
                                "key": "kubernetes.io/hostname",
                                "operator": "In",
                                "values": ["node-b"],
                            }
                        ]
                    }
                ]
            }
        }
    }
    pod = pod_object("p", "default/fast", affinity=only_b)
    assert post(client, review(POD, pod, namespace="ml"))["allowed"] is True
    unpinned = pod_object("p", "default/fast")
    answer = post(client, review(POD, unpinned, namespace="ml"))
    assert answer["allowed"] is False and "node-a/eth2" in answer["status"]["message"]


def test_a_nic_selected_by_mac_is_found(client, inventory):
    inventory["eth1"].state = OwnershipState.CNI
    inventory["eth1"].reason = "Calico"
    inventory["eth1"].save()
    answer = post(client, review(POD, pod_object("p", "default/bymac", nodeName="node-a")))
    assert answer["allowed"] is False
    assert answer["status"]["details"]["causes"][0]["reason"] == "DEVICE_NOT_FREE"


def test_pods_without_host_device_nads_are_allowed(client, inventory):
    for networks in ("default/macvlan", "default/unknown-nad"):
        answer = post(client, review(POD, pod_object("p", networks, nodeName="node-a")))
        assert answer["allowed"] is True
    plain = {"metadata": {"name": "p"}, "spec": {"containers": []}}
    assert post(client, review(POD, plain))["allowed"] is True


# --- one query per review -------------------------------------------------------------------


def test_a_review_costs_at_most_one_query_once_the_index_is_warm(client, inventory):
    admission_facts.INDEX.reload()
    cases = [
        review(POD, pod_object("p", "default/free", nodeName="node-a"), namespace="ml"),
        review(POD, pod_object("p", "default/free"), namespace="ml"),
        review(NAD, nad_object("free2", host_device("free2", device="eth1"))),
    ]
    for body in cases:
        with CaptureQueriesContext(connection) as queries:
            assert post(client, body)["allowed"] is True
        assert len(queries) == 1, [q["sql"] for q in queries]
        assert "inventory_interface" in queries[0]["sql"]
    with CaptureQueriesContext(connection) as queries:
        post(client, review(POD, {"metadata": {"name": "plain"}, "spec": {}}))
    assert len(queries) == 0


def test_a_denial_reads_once_then_writes_its_record(
    client, inventory, django_assert_max_num_queries
):
    admission_facts.INDEX.reload()
    body = review(POD, pod_object("p", "default/fast", nodeName="node-a"), namespace="ml")
    with CaptureQueriesContext(connection) as queries:
        assert post(client, body)["allowed"] is False
    # SAVEPOINTs are the test's transaction around the record's atomic block (nothing of the
    # kind outside a transaction, in production).
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    reads = [sql for sql in statements if "inventory_admissionrecord" not in sql]
    assert len(reads) == 1 and "inventory_interface" in reads[0]
    if connection.vendor == "postgresql":
        # One INSERT ... ON CONFLICT: the record in one round trip.
        assert len(statements) == 2 and "ON CONFLICT" in statements[1]
    else:
        assert len(statements) == 3  # the read, the record's UPDATE (no row yet), its INSERT
    with CaptureQueriesContext(connection) as queries:
        post(client, body)
    statements = [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 2  # the read, the record's UPDATE (or upsert)
    record = AdmissionRecord.objects.get(name="p")
    assert record.count == 2 and record.codes and record.uid and record.message


def test_a_reservation_is_seen_by_the_next_review(client, inventory):
    admission_facts.INDEX.reload()
    pod = pod_object("p", "default/free", nodeName="node-a")
    assert post(client, review(POD, pod, namespace="ml"))["allowed"] is True
    make_reservation(inventory["eth1"], inventory["platform"])
    assert post(client, review(POD, pod, namespace="ml"))["allowed"] is False


# --- modes, failures, metrics ---------------------------------------------------------------


def test_warn_mode_allows_and_records_the_would_be_denial(client, inventory, settings):
    settings.WEBHOOK_MODE = "warn"
    answer = post(client, review(NAD, nad_object("macvlan-conf", SEED_CONFIG)))
    assert answer["allowed"] is True and "status" not in answer
    assert answer["warnings"][0].startswith("NICPortal (warn mode) would deny: CONFIG_INVALID_JSON")
    record = AdmissionRecord.objects.get()
    assert record.enforced is False and record.codes == "CONFIG_INVALID_JSON"


@pytest.mark.parametrize(("policy", "allowed"), [("Ignore", True), ("Fail", False)])
def test_an_error_is_answered_as_the_failure_policy_says(
    client, inventory, settings, monkeypatch, policy, allowed
):
    # Fault injection: the read side fails as it does when PostgreSQL is gone.
    def down(*args, **kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(admission_facts, "load_index", down)
    settings.WEBHOOK_FAILURE_POLICY = policy
    answer = post(client, review(POD, pod_object("p", "default/fast", nodeName="node-a")))
    assert answer["allowed"] is allowed
    if allowed:
        assert "could not check this request (OperationalError" in answer["warnings"][0]
    else:
        assert answer["status"]["code"] == 500 and answer["status"]["reason"] == "InternalError"
        settings.WEBHOOK_MODE = "warn"  # warn mode never denies, not even on an error
        answer = post(client, review(POD, pod_object("p", "default/fast", nodeName="node-a")))
        assert answer["allowed"] is True and "allowed (warn mode)" in answer["warnings"][0]


@pytest.mark.redis
def test_decisions_and_latency_are_counted_in_metrics(client, inventory, settings):
    assert settings.REDIS_URL, "the metrics are counted in Redis"
    admission.flush_counters()  # earlier tests' counts still pending in this process
    cache.clear()
    post(client, review(NAD, nad_object("macvlan-conf", SEED_CONFIG)))
    post(client, review(NAD, nad_object("macvlan-conf", SEED_CONFIG), dryRun=True))
    post(client, review(POD, pod_object("p", "default/free", nodeName="node-a"), namespace="ml"))
    post(
        client, review(NAD, nad_object("n", host_device("n", device="eth1"), x="y"), namespace="ml")
    )
    client.post("/validate", b"nope", content_type="application/json")
    settings.ROOT_URLCONF = "nicportal.urls_ops"
    response = client.get("/metrics", HTTP_HOST="localhost")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value

    def decisions(resource, decision, dry_run="false"):
        labels = {
            "cluster": settings.CLUSTER_NAME,
            "resource": resource,
            "decision": decision,
            "mode": "enforce",
            "dry_run": dry_run,
        }
        return samples.get(("nicportal_admission_decisions_total", tuple(sorted(labels.items()))))

    assert decisions("nads", "denied") == 1
    assert decisions("nads", "denied", "true") == 1
    assert decisions("pods", "allowed") == 1
    assert decisions("invalid", "errored") == 1
    where = ("cluster", settings.CLUSTER_NAME)
    count = samples[("nicportal_admission_latency_seconds_count", (where, ("resource", "nads")))]
    assert count == 3
    inf = samples[
        (
            "nicportal_admission_latency_seconds_bucket",
            (where, ("le", "+Inf"), ("resource", "nads")),
        )
    ]
    assert inf == 3


@pytest.mark.django_db(transaction=True)
def test_the_index_is_rebuilt_in_the_background_while_the_old_one_answers(settings):
    settings.CLUSTER_NAME = "bg"
    cluster = make_cluster(name="bg")
    make_node(cluster, name="node-a")
    holder = admission_facts.IndexHolder()
    first = holder.get()
    assert set(first.nodes) == {"node-a"} and not first.nads
    NetworkAttachment.objects.create(
        cluster=cluster, namespace="default", name="late", config=host_device("late", device="eth9")
    )
    settings.WEBHOOK_INDEX_MAX_AGE = 0.001
    time.sleep(0.01)
    assert holder.get() is first  # stale-while-revalidate: the old index answers meanwhile
    deadline = time.monotonic() + 10
    while "default/late" not in holder.get().nads:
        assert time.monotonic() < deadline, "the background refresh did not happen"
        time.sleep(0.05)
    assert holder.get().nads["default/late"].selector == decide.DeviceSelector("device", "eth9")


def test_a_max_age_of_zero_reads_the_index_for_every_review(client, inventory, settings):
    settings.WEBHOOK_INDEX_MAX_AGE = 0
    pod = pod_object("p", "default/late", nodeName="node-a")
    assert "not in its inventory" in post(client, review(POD, pod, namespace="ml"))["warnings"][0]
    NetworkAttachment.objects.create(
        cluster=inventory["cluster"],
        namespace="default",
        name="late",
        config=host_device("late", device="eth3"),
    )
    answer = post(client, review(POD, pod, namespace="ml"))
    assert answer["allowed"] is False and "DEVICE_IN_POD" in answer["status"]["message"]


@pytest.mark.redis
def test_counts_survive_a_redis_outage_until_the_next_flush(settings):
    admission.flush_counters()
    cache.clear()
    real = settings.REDIS_URL
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there
    admission._count("pods", "allowed", "enforce", False, 0.002)
    admission.flush_counters()  # fails: the counts stay pending
    settings.REDIS_URL = real
    counters = admission.read_counters()  # flushes them first
    cluster = settings.CLUSTER_NAME
    assert counters[f"decision|{cluster}|pods|allowed|enforce|false"] == 1
    assert counters[f"bucket|{cluster}|pods|0.0025"] == 1


def test_nodes_a_nad_names_that_the_inventory_lacks_are_named_in_a_warning(client, inventory):
    obj = nad_object("pinned", host_device("pinned", device="eth1"))
    obj["metadata"]["annotations"] = {"nicportal.io/nodes": "node-a,node-x"}
    answer = post(client, review(NAD, obj))
    assert answer["allowed"] is True
    assert any(
        "node-x (in nicportal.io/nodes) not in its inventory" in w for w in answer["warnings"]
    )
