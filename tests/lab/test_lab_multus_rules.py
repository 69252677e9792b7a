"""The lab's Multus and scheduler rules: the network-status text as the NAD client marshals it,
node selection as kube-scheduler reads nodeSelector and required node affinity, and the conflict
retry of the status write against the real API server."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json

import pytest

from lab import multus
from lab.control_plane import api_for
from lab.kubelet import LabNode, node_fits
from lab.layout import LayoutError, parse_layout


def test_an_entry_without_ips_has_no_ips_key_and_dns_is_always_there():
    assert multus.status_entry("default/hd", "net1", "aa:bb:cc:dd:ee:ff", []) == {
        "name": "default/hd",
        "interface": "net1",
        "mac": "aa:bb:cc:dd:ee:ff",
        "dns": {},
    }
    entry = multus.status_entry("k8s-pod-network", "eth0", "02:00:00:00:00:01", ["10.1.0.2"],
                                default=True, mtu=1450)  # fmt: skip
    assert list(entry) == ["name", "interface", "ips", "mac", "mtu", "default", "dns"]


def test_the_annotation_is_each_entry_indented_by_four_spaces_joined_by_commas():
    value = multus.network_status_value(
        [multus.status_entry("a", "eth0", "", ["10.0.0.1"]), multus.status_entry("b", "", "", [])]
    )
    assert value == (
        '[{\n    "name": "a",\n    "interface": "eth0",\n    "ips": [\n        "10.0.0.1"\n'
        '    ],\n    "dns": {}\n},{\n    "name": "b",\n    "dns": {}\n}]'
    )
    assert json.loads(value)[1] == {"name": "b", "dns": {}}
    assert multus.network_status_value([]) == "[]"


NODE = LabNode("node-a", "ns", "10.0.0.11", 0, labels={"zone": "z1", "gpu": "4"})


def pod(selector=None, *terms):
    spec = {"nodeSelector": selector} if selector else {}
    if terms:
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {
            "nodeSelectorTerms": list(terms)}}}  # fmt: skip
    return {"spec": spec}


def expr(key, operator, *values):
    return {"key": key, "operator": operator, "values": list(values)}


@pytest.mark.parametrize(
    ("candidate", "fits"),
    [
        (pod(), True),
        (pod({"zone": "z1"}), True),
        (pod({"zone": "z2"}), False),
        (pod(None, {"matchExpressions": [expr("zone", "In", "z1", "z2")]}), True),
        (pod(None, {"matchExpressions": [expr("zone", "NotIn", "z1")]}), False),
        (pod(None, {"matchExpressions": [expr("rack", "DoesNotExist")]}), True),
        (pod(None, {"matchExpressions": [expr("gpu", "Gt", "2")]}), True),
        (pod(None, {"matchExpressions": [expr("gpu", "Lt", "2")]}), False),
        # terms are ORed, expressions in a term ANDed
        (
            pod(
                None,
                {"matchExpressions": [expr("zone", "In", "z9")]},
                {"matchFields": [expr("metadata.name", "In", "node-a")]},
            ),
            True,
        ),  # fmt: skip
        (
            pod(
                None,
                {
                    "matchExpressions": [
                        expr("zone", "In", "z1"),
                        expr("gpu", "Exists"),
                        expr("rack", "Exists"),
                    ]
                },
            ),
            False,
        ),  # fmt: skip
        (pod(None, {}), False),  # an empty term matches nothing
        (pod({"zone": "z1"}, {"matchExpressions": [expr("zone", "In", "z2")]}), False),
    ],
)
def test_node_selection_follows_the_scheduler(candidate, fits):
    assert node_fits(candidate, NODE) is fits


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"host_device": "0.9.1"}, "host_device '0.9.1': the lab has 1.1.1, 1.2.0, 1.6.2"),
        ({"multus": "4.0"}, "multus '4.0': one of 3.9, 4.2"),
        ({"labels": {"bad key!": "x"}}, "label bad key!='x' is not valid"),
        ({"kubelet": "x"}, "unknown keys ['kubelet']"),
    ],
)
def test_a_layout_names_only_releases_the_lab_has(extra, message):
    node = {"name": "n1", "nics": [{"name": "eth0", "address": "10.0.0.1/24",
                                    "default_route": True}], **extra}  # fmt: skip
    with pytest.raises(LayoutError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_layout({"nodes": [node]})


@pytest.mark.lab
def test_a_stale_first_status_write_is_retried_after_a_conflict(clean_lab):
    """Multus 3.9 first PUTs the pod it read at the start of ADD; the API server answers 409
    when the kubelet changed the pod since, and the retry GETs it and writes again."""
    clean_lab.create_pod("default", "racy", "node-c")
    stale = clean_lab.get_pod("default", "racy")
    clean_lab.core.patch_namespaced_pod("racy", "default", {"metadata": {"labels": {"x": "1"}}})
    sandbox = multus.Sandbox(
        namespace="default", name="racy", uid=stale["metadata"]["uid"], sandbox_id="0",
        netns="none", node_netns="none", host_device=clean_lab.state.pki_dir, version="3.9",
    )  # fmt: skip

    async def write() -> None:
        async with api_for(clean_lab.state, "multus") as api:
            await multus.Multus(api).set_network_status(sandbox, "[]", first=stale)

    # In a thread of its own: a browser test earlier in the session may own this thread's loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, write()).result()
    annotations = clean_lab.get_pod("default", "racy")["metadata"]["annotations"]
    assert annotations[multus.NETWORK_STATUS_ANNOTATION] == "[]"
    assert annotations[multus.OLD_NETWORK_STATUS_ANNOTATION] == "[]"
    assert clean_lab.get_pod("default", "racy")["metadata"]["labels"]["x"] == "1"
