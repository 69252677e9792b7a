"""One webhook server for several clusters: `/validate` checks a review against the default
cluster's inventory, `/clusters/<name>/validate` against that registered cluster's. Both
clusters have a node-a with an eth1: free in the default cluster, the node's uplink in the
second, so one NAD is admitted by one path and denied by the other."""

from __future__ import annotations

import json

import pytest

from inventory.choices import OwnershipState
from inventory.models import AdmissionRecord
from inventory.read import admission as admission_facts
from tests.factories import make_cluster, make_interface, make_node
from tests.integration.test_admission_webhook import CNI, NAD, host_device, nad_object, review

pytestmark = [pytest.mark.urls("nicportal.urls_webhook"), pytest.mark.django_db]


@pytest.fixture
def two(settings):
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = "3.9"
    settings.WEBHOOK_MODE = "enforce"
    settings.WEBHOOK_FAILURE_POLICY = "Ignore"
    for name, state in (("prod", OwnershipState.FREE), ("second", OwnershipState.SYSTEM)):
        node = make_node(make_cluster(name=name), name="node-a", cni=CNI)
        make_interface(node, name="eth1", state=state, reason="carries the default route")
    admission_facts.INDEX.background = False
    admission_facts.INDEX.clear()
    yield
    admission_facts.INDEX.clear()
    admission_facts.INDEX.background = True


def send(client, path: str) -> dict:
    config = host_device("uplink", device="eth1")
    body = review(NAD, nad_object("uplink", config, **{"nicportal.io/nodes": "node-a"}))
    answer = client.post(path, json.dumps(body), content_type="application/json")
    assert answer.status_code == 200, answer.content
    assert answer.json()["response"]["uid"] == body["request"]["uid"]
    return answer.json()["response"]


def test_each_clusters_path_checks_that_clusters_inventory(client, two):
    assert send(client, "/validate")["allowed"] is True
    denied = send(client, "/clusters/second/validate")
    assert denied["allowed"] is False
    causes = {c["reason"]: c["message"] for c in denied["status"]["details"]["causes"]}
    assert "PRIMARY_NIC" in causes and "node-a/eth1" in causes["PRIMARY_NIC"]
    # The default cluster's own name is the same as /validate.
    assert send(client, "/clusters/prod/validate")["allowed"] is True
    record = AdmissionRecord.objects.get()
    assert (record.cluster, record.codes) == ("second", "PRIMARY_NIC")


def test_the_same_denial_in_two_clusters_is_two_records(client, two):
    config = host_device("uplink", device="eth0")  # no eth0 in either inventory: denied in both
    body = review(NAD, nad_object("uplink", config, **{"nicportal.io/nodes": "node-a"}))
    for path in ("/validate", "/clusters/second/validate", "/clusters/second/validate"):
        body["request"]["uid"] = path + str(AdmissionRecord.objects.count())
        answer = client.post(path, json.dumps(body), content_type="application/json").json()
        assert answer["response"]["allowed"] is False
    rows = sorted(AdmissionRecord.objects.values_list("cluster", "count"))
    assert rows == [("prod", 1), ("second", 2)]


def test_decisions_are_counted_per_cluster_and_older_counts_are_the_default_clusters(
    client, two, settings
):
    from django.core.cache import cache
    from prometheus_client.parser import text_string_to_metric_families

    from inventory.services import admission

    admission.flush_counters()  # earlier tests' counts still pending in this process
    cache.clear()
    if settings.REDIS_URL:
        admission._redis(settings.REDIS_URL).delete(admission.METRICS_KEY)
    send(client, "/validate")
    send(client, "/clusters/second/validate")
    send(client, "/clusters/second/validate")
    admission.flush_counters()
    # A count kept before decisions had a cluster label (one field fewer): the default's.
    legacy = "decision|pods|allowed|enforce|false"
    if settings.REDIS_URL:
        admission._redis(settings.REDIS_URL).hincrby(admission.METRICS_KEY, legacy, 4)
    else:
        cache.set(admission.METRICS_KEY, {**cache.get(admission.METRICS_KEY), legacy: 4}, None)
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(
            "".join(
                f"{line}\n"
                for metric in admission.AdmissionCollector().collect()
                for line in _exposition(metric)
            )
        )
        for sample in family.samples
    }

    def decided(cluster, resource, decision):
        labels = (
            ("cluster", cluster),
            ("decision", decision),
            ("dry_run", "false"),
            ("mode", "enforce"),
            ("resource", resource),
        )
        return samples.get(("nicportal_admission_decisions_total", labels))

    assert decided("prod", "nads", "allowed") == 1
    assert decided("second", "nads", "denied") == 2
    assert decided("second", "nads", "allowed") is None  # no series made up for it
    assert decided("prod", "pods", "allowed") == 4
    count = (
        "nicportal_admission_latency_seconds_count",
        (("cluster", "second"), ("resource", "nads")),
    )
    assert samples[count] == 2


def _exposition(metric):
    from prometheus_client import CollectorRegistry, generate_latest

    class One:
        def collect(self):
            yield metric

    registry = CollectorRegistry()
    registry.register(One())
    return generate_latest(registry).decode().splitlines()


def test_a_path_naming_no_registered_cluster_is_answered_as_the_failure_policy_says(
    client, two, settings
):
    allowed = send(client, "/clusters/nowhere/validate")
    assert allowed["allowed"] is True
    (warning,) = allowed["warnings"]
    assert "no cluster named 'nowhere' is registered in NICPortal" in warning
    settings.WEBHOOK_FAILURE_POLICY = "Fail"
    denied = send(client, "/clusters/nowhere/validate")
    assert denied["allowed"] is False and denied["status"]["code"] == 500
    assert "no cluster named 'nowhere'" in denied["status"]["message"]
    assert not AdmissionRecord.objects.exists()


def test_the_index_is_kept_per_cluster(client, two, settings):
    settings.WEBHOOK_INDEX_MAX_AGE = 3600
    assert send(client, "/clusters/second/validate")["allowed"] is False
    assert send(client, "/validate")["allowed"] is True
    assert admission_facts.INDEX.get("second").cluster == "second"
    assert admission_facts.INDEX.get().cluster == "prod"


def test_anything_else_under_clusters_is_a_json_404(client, two):
    answer = client.post("/clusters/second/other", b"{}", content_type="application/json")
    assert answer.status_code == 404
    assert "/clusters/<name>/validate" in answer.json()["error"]
