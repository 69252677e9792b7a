"""Fleet-wide reviews (pods that may run on any node, NADs without a node list) judged on device
classes (rules/admission/fleet.py, rules/nad/fleet.py, one grouped query in read/admission.py)
decide exactly as the node-by-node path: the same Decision (allowed,
causes, fields, fixes, messages naming the same nodes and counts, warnings) on random fleets
in PostgreSQL, with every ownership state, reservations of several teams, primary NICs,
wireless and DPDK drivers, VFs, plugins, node names whose order depends on the collation, and
pods with placements and several attachments, NADs on CREATE and UPDATE with every
selector, cniVersions some plugins refuse and IPAM."""

from __future__ import annotations

import dataclasses
import json
import random
from collections import Counter

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from inventory.choices import OwnershipState
from inventory.models import NetworkAttachment, TeamNamespace
from inventory.read import admission as admission_facts
from inventory.rules.admission import decide
from inventory.rules.admission.fleet import DeviceClass
from inventory.rules.admission.review import parse_review
from inventory.services import admission
from tests.factories import make_cluster, make_interface, make_node, make_reservation, make_team
from tests.integration.test_admission_webhook import NAD, POD, review

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): device classes are grouped there only")


NAMES = ("eth0", "eth1", "ens1f0", "ens1f1")
PCI = {name: f"0000:3b:00.{i}" for i, name in enumerate(NAMES)}
PLUGINS = (
    {"host_device": {"version": "1.1.1", "supported_versions": ["0.3.1", "0.4.0", "1.0.0"]}},
    {"host_device": {"version": "1.6.0", "supported_versions": ["0.3.1", "1.0.0", "1.1.0"]}},
    {},
)
REASONS = {
    OwnershipState.SYSTEM: ("carries the default route", "node's InternalIP 10.0.0.9", "a bond"),
    OwnershipState.POD: ("moved into pod default/web-0 by host-device",),
}
DRIVERS = ("ixgbe", "ixgbe", "mlx5_core", "vfio-pci", "iwlwifi")


def random_fleet(rng: random.Random) -> dict:
    cluster = make_cluster(name="prod")
    teams = [make_team(name) for name in ("platform", "ml", "storage")]
    TeamNamespace.objects.create(team=teams[0], pattern="platform-*")
    TeamNamespace.objects.create(team=teams[1], pattern="ml")
    macs = []
    # How alike the nodes are: fleets are mostly uniform (large classes, messages that say "and
    # N more"), with odd nodes here and there; some fleets are all odd (many small classes).
    alike = rng.choice((0.0, 0.8, 0.95))

    def pick(typical, *others):
        return typical if rng.random() < alike else rng.choice((typical, *others))

    for i in range(rng.randint(4, 40)):
        # Names whose code-point order differs from a linguistic collation's.
        name = rng.choice(("node-{}", "node{}", "n.{}", "Node-{}"))
        node = make_node(
            cluster,
            name=name.format(i).lower() if rng.random() < 0.8 else name.format(i),
            cni=pick(*PLUGINS),
            labels={"rack": rng.choice(("r1", "r2")), "kubernetes.io/hostname": f"h{i}"},
        )
        for nic in NAMES if rng.random() < alike else rng.sample(NAMES, rng.randint(1, 4)):
            typical = OwnershipState.SYSTEM if nic == "eth0" else OwnershipState.FREE
            state = pick(typical, *OwnershipState)
            driver = pick(*DRIVERS)
            row = make_interface(
                node,
                name=nic,
                pci_address=pick(PCI[nic], ""),
                driver=driver,
                kind=pick("physical", "wireless"),
                wireless=driver == "iwlwifi",
                state=state,
                reason=pick(*REASONS.get(state, ("",)), ""),
                holder=(
                    rng.choice(("team ml", "team platform", ""))
                    if state == OwnershipState.RESERVED
                    else "pod default/web-0"
                    if state == OwnershipState.POD
                    else ""
                ),
                has_netdev=pick(True, False),
                sriov_num_vfs=pick(0, 4),
            )
            macs.append(row.mac)
            if state in (OwnershipState.FREE, OwnershipState.RESERVED) and pick(False, True):
                make_reservation(row, rng.choice(teams))
    configs = [("default", f"dev-{nic}", {"device": nic}) for nic in NAMES]
    configs += [
        ("default", "pci", {"pciBusID": PCI["eth1"]}),
        ("ml", "ml-eth1", {"device": "eth1"}),
    ]
    configs += [("default", "mac", {"hwaddr": rng.choice(macs).upper()})]
    for namespace, name, selector in configs:
        NetworkAttachment.objects.create(
            cluster=cluster,
            namespace=namespace,
            name=name,
            config=json.dumps(
                {"cniVersion": "0.3.1", "name": name, "type": "host-device", **selector}
            ),
            team=rng.choice([None, *teams]),
        )
    return {"nads": [f"{ns}/{name}" for ns, name, _ in configs], "macs": macs}


def nad_review(rng: random.Random, macs: list[str]) -> bytes:
    selector = rng.choice(
        [
            *({"device": nic} for nic in NAMES),
            {"device": "eth9"},  # on no node
            {"pciBusID": PCI[rng.choice(NAMES)].upper()},
            {"hwaddr": rng.choice(macs).upper()},
        ]
    )
    config = {"cniVersion": rng.choice(("0.3.1", "0.4.0", "1.1.0")), "type": "host-device"}
    config = {**config, "name": "n", **selector}
    if rng.random() < 0.3:
        config["ipam"] = {"type": "static", "addresses": [{"address": "10.1.0.5/24"}]}
    operation = rng.choice(("CREATE", "CREATE", "UPDATE"))
    nad = {
        "metadata": {"name": "n", "namespace": "default"},
        "spec": {"config": json.dumps(config)},
    }
    old = None
    if operation == "UPDATE":
        old = json.loads(json.dumps(nad))
        if rng.random() < 0.5:
            old["spec"]["config"] = json.dumps({**config, "cniVersion": "0.3.1", "name": "old"})
    return json.dumps(review(NAD, nad, operation=operation, oldObject=old)).encode()


def pod_review(rng: random.Random, nads: list[str]) -> bytes:
    networks = rng.choice(nads)
    if rng.random() < 0.3:
        networks += "," + rng.choice(nads)  # the same NAD twice, or two
    spec: dict = {}
    if rng.random() < 0.3:
        spec["nodeSelector"] = {"rack": rng.choice(("r1", "r2", "r3"))}
    elif rng.random() < 0.2:
        term = {"matchExpressions": [{"key": "rack", "operator": "NotIn", "values": ["r2"]}]}
        spec["affinity"] = {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}
            }
        }
    namespace = rng.choice(("ml", "platform-a", "default", "lonely"))
    pod = {"metadata": {"name": "p", "annotations": {"k8s.v1.cni.cncf.io/networks": networks}}}
    return json.dumps(review(POD, {**pod, "spec": spec}, namespace=namespace)).encode()


@pytest.mark.parametrize("seed", range(12))
def test_fleet_wide_reviews_are_decided_as_node_by_node(settings, monkeypatch, seed):
    settings.CLUSTER_NAME = "prod"
    settings.WEBHOOK_INDEX_MAX_AGE = 3600
    rng = random.Random(seed)
    fleet = random_fleet(rng)
    admission_facts.INDEX.background = False
    admission_facts.INDEX.reload()
    grouped: Counter[str] = Counter()
    try:
        for _ in range(40):
            if rng.random() < 0.5:
                request = parse_review(pod_review(rng, fleet["nads"]))
            else:
                request = parse_review(nad_review(rng, fleet["macs"]))
            monkeypatch.setattr(admission, "FLEET_CLASSES", True)
            with CaptureQueriesContext(connection) as queries:
                fast = admission.decide_request(request)
            if any("array_agg" in q["sql"] for q in queries):
                grouped[request.resource] += 1
            monkeypatch.setattr(admission, "FLEET_CLASSES", False)
            slow = admission.decide_request(request)
            assert fast == slow, request.object
            assert len(queries) <= 1
    finally:
        admission_facts.INDEX.clear()
        admission_facts.INDEX.background = True
    # The grouped query did the judging, of pods and of NADs.
    assert grouped["pods"] and grouped["network-attachment-definitions"], grouped


def test_a_class_that_is_not_one_falls_back_to_node_by_node(settings, monkeypatch):
    """Two read members of one class yielding different codes (a fact the grouping would have
    missed) make the review judge node by node: same answer, one more query."""
    settings.CLUSTER_NAME = "prod"
    cluster = make_cluster(name="prod")
    for i in range(5):
        node = make_node(cluster, name=f"node-{i}")
        make_interface(node, name="eth1", driver="ixgbe")
    NetworkAttachment.objects.create(
        cluster=cluster,
        namespace="default",
        name="n",
        config=json.dumps(
            {"cniVersion": "0.3.1", "name": "n", "type": "host-device", "device": "eth1"}
        ),
    )
    body = json.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "u",
                "resource": {"group": "", "version": "v1", "resource": "pods"},
                "operation": "CREATE",
                "namespace": "default",
                "object": {
                    "metadata": {
                        "name": "p",
                        "annotations": {"k8s.v1.cni.cncf.io/networks": "default/n"},
                    }
                },
            },
        }
    ).encode()
    admission_facts.INDEX.background = False
    admission_facts.INDEX.reload()
    real = admission_facts.device_classes

    def split(index, **kwargs):
        classes = real(index, **kwargs)
        first, second, *rest = classes[0].devices
        odd = dataclasses.replace(second, state=OwnershipState.MISSING.value)
        return [DeviceClass((first, odd, *rest), classes[0].nodes)]

    try:
        expected = admission.decide_request(parse_review(body))
        assert expected.allowed is True
        monkeypatch.setattr(admission_facts, "device_classes", split)
        with CaptureQueriesContext(connection) as queries:
            assert admission.decide_request(parse_review(body)) == expected
        assert len(queries) == 2  # the grouped query, then node by node
    finally:
        admission_facts.INDEX.clear()
        admission_facts.INDEX.background = True


@pytest.mark.parametrize("alike", [True, False])
def test_a_mac_on_two_interfaces_of_a_node_is_judged_node_by_node(settings, monkeypatch, alike):
    """Bond members share a MAC: with two matching interfaces on one node (in one class or
    two) the grouped answer is not used; the decision is the node-by-node one."""
    settings.CLUSTER_NAME = "prod"
    cluster = make_cluster(name="prod")
    mac = "02:aa:00:00:00:01"
    for i in range(5):
        node = make_node(cluster, name=f"node-{i}")
        make_interface(node, name="eth1", mac=mac, identity=f"id-{i}-1")
        state = OwnershipState.FREE if alike else OwnershipState.ENSLAVED
        make_interface(node, name="eth2", mac=mac, identity=f"id-{i}-2", state=state)
    config = {"cniVersion": "0.3.1", "name": "n", "type": "host-device", "hwaddr": mac}
    NetworkAttachment.objects.create(
        cluster=cluster, namespace="default", name="n", config=json.dumps(config)
    )
    pod = {"metadata": {"name": "p", "annotations": {"k8s.v1.cni.cncf.io/networks": "n"}}}
    request = parse_review(
        json.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "request": {
                    "uid": "u",
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "CREATE",
                    "namespace": "default",
                    "object": pod,
                },
            }
        )
    )
    admission_facts.INDEX.background = False
    index = admission_facts.INDEX.reload()
    try:
        selector = decide.DeviceSelector("hwaddr", mac)
        assert admission_facts.device_classes(index, selector=selector) is None
        with CaptureQueriesContext(connection) as queries:
            decision = admission.decide_request(request)
        assert len(queries) == 2  # the grouped query, then node by node
        monkeypatch.setattr(admission, "FLEET_CLASSES", False)
        assert admission.decide_request(request) == decision
    finally:
        admission_facts.INDEX.clear()
        admission_facts.INDEX.background = True
    assert decision.judged
