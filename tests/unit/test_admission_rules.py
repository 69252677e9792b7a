"""The admission webhook's pure part: the AdmissionReview v1 contract, pod placement and the
NAD / pod decisions, with plain data (no database)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from test_nad_fixtures import OLD_PLUGIN, veth

from inventory.rules.admission import decide, placement
from inventory.rules.admission.review import (
    AdmissionRequest,
    Cause,
    ReviewError,
    parse_review,
    response,
)
from inventory.rules.multus import parse_networks

SEED_CONFIG = (
    '{\n  "cniVersion": "0.3.1",\n  # the uplink\n  "type": "host-device",\n  "device": "eth0"\n}'
)


def request(**changes) -> AdmissionRequest:
    base = AdmissionRequest(
        uid="u-1",
        group="k8s.cni.cncf.io",
        version="v1",
        resource="network-attachment-definitions",
        sub_resource="",
        operation="CREATE",
        namespace="default",
        name="uplink",
        object=None,
        old_object=None,
        dry_run=False,
        username="alice",
    )
    return replace(base, **changes)


def config(**fields) -> str:
    base = {"cniVersion": "0.3.1", "name": "uplink", "type": "host-device", "device": "eth1"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None})


def nad_obj(text: str, **annotations) -> decide.NadObject:
    return decide.NadObject("default", "uplink", text, annotations)


# --- the AdmissionReview contract -------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"kind": "Pod"}', 'kind must be "AdmissionReview"'),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1beta1"}', "apiVersion"),
        (b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}', "request is"),
        (
            b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1", "request": {}}',
            "request.uid is missing",
        ),
        (b'{"a": ' * 100000, "not JSON"),  # nesting deep enough for a RecursionError
    ],
)
def test_it_refuses_a_body_it_cannot_answer_naming_why(body, fragment):
    with pytest.raises(ReviewError, match=fragment):
        parse_review(body)


def test_it_reads_the_fields_of_a_request_whatever_their_types():
    parsed = parse_review(
        json.dumps(
            {
                "kind": "AdmissionReview",
                "apiVersion": "admission.k8s.io/v1",
                "request": {
                    "uid": "abc",
                    "resource": {"group": "", "version": "v1", "resource": "pods"},
                    "operation": "create",
                    "namespace": 7,
                    "userInfo": "nobody",
                    "dryRun": "yes",
                    "object": [1],
                },
            }
        )
    )
    assert parsed.uid == "abc" and parsed.resource_key == "/pods"
    assert parsed.operation == "CREATE" and parsed.namespace == "" and parsed.username == ""
    assert parsed.dry_run is False  # only a JSON true is a dry run
    assert parsed.object == [1]


def test_a_denial_echoes_the_uid_with_code_reason_message_and_causes():
    body = response(
        "u-9",
        allowed=False,
        code=422,
        reason="Invalid",
        message="NICPortal: NAD default/x",
        causes=[Cause("NO_SELECTOR", "spec.config", "no device", "Add one.")],
        warnings=["w" * 2000, ""],
        subject={"group": "k8s.cni.cncf.io", "kind": "NetworkAttachmentDefinition", "name": ""},
    )
    assert body["apiVersion"] == "admission.k8s.io/v1" and body["kind"] == "AdmissionReview"
    answer = body["response"]
    assert answer["uid"] == "u-9" and answer["allowed"] is False
    assert answer["status"] == {
        "status": "Failure",
        "code": 422,
        "reason": "Invalid",
        "message": "NICPortal: NAD default/x",
        "details": {
            "group": "k8s.cni.cncf.io",
            "kind": "NetworkAttachmentDefinition",
            "causes": [
                {
                    "reason": "NO_SELECTOR",
                    "field": "spec.config",
                    "message": "NICPortal NO_SELECTOR: no device Fix: Add one.",
                }
            ],
        },
    }
    assert len(answer["warnings"]) == 1 and len(answer["warnings"][0]) == 512


def test_an_allowance_has_no_status_and_many_warnings_are_bounded():
    body = response("u", allowed=True, warnings=[f"w{i}" for i in range(40)])
    assert "status" not in body["response"]
    warnings = body["response"]["warnings"]
    assert len(warnings) == 12 and warnings[-1] == "NICPortal: 29 more warnings in its log."


# --- placement ------------------------------------------------------------------------------


def affinity(*terms) -> dict:
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
        }
    }


LABELS = {"kubernetes.io/hostname": "node-a", "zone": "a", "cores": "64"}


@pytest.mark.parametrize(
    ("spec", "matches"),
    [
        ({}, True),
        ({"nodeName": "node-a"}, True),
        ({"nodeName": "node-b"}, False),
        ({"nodeSelector": {"zone": "a"}}, True),
        ({"nodeSelector": {"zone": "b"}}, False),
        (
            {
                "affinity": affinity(
                    {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "c"]}]}
                )
            },
            True,
        ),
        (
            {
                "affinity": affinity(
                    {"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}
                )
            },
            False,
        ),
        (
            {
                "affinity": affinity(
                    {"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}
                )
            },
            True,
        ),
        (
            {"affinity": affinity({"matchExpressions": [{"key": "gpu", "operator": "Exists"}]})},
            False,
        ),
        (
            {
                "affinity": affinity(
                    {"matchExpressions": [{"key": "cores", "operator": "Gt", "values": ["32"]}]}
                )
            },
            True,
        ),
        (
            {
                "affinity": affinity(
                    {"matchExpressions": [{"key": "cores", "operator": "Lt", "values": ["x"]}]}
                )
            },
            False,
        ),
        (
            {
                "affinity": affinity(
                    {
                        "matchFields": [
                            {"key": "metadata.name", "operator": "In", "values": ["node-a"]}
                        ]
                    }
                )
            },
            True,
        ),
        # Terms are ORed; an empty term matches nothing.
        (
            {
                "affinity": affinity(
                    {}, {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
                )
            },
            True,
        ),
        ({"affinity": affinity({})}, False),
        ({"affinity": {"podAffinity": {}}}, True),
    ],
)
def test_placement_follows_the_scheduler_hard_constraints(spec, matches):
    assert placement.pod_placement({"spec": spec}).matches("node-a", LABELS) is matches


def test_a_hostname_pin_names_its_nodes_and_anything_else_does_not():
    pin = {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a", "node-b"]}
    assert placement.pod_placement({"spec": {"nodeName": "n"}}).pinned_names() == {"n"}
    assert placement.pod_placement(
        {"spec": {"nodeSelector": {"kubernetes.io/hostname": "node-c"}}}
    ).pinned_names() == {"node-c"}
    assert placement.pod_placement(
        {"spec": {"affinity": affinity({"matchExpressions": [pin]})}}
    ).pinned_names() == {"node-a", "node-b"}
    zone = {"key": "zone", "operator": "In", "values": ["a"]}
    assert (
        placement.pod_placement(
            {
                "spec": {
                    "affinity": affinity({"matchExpressions": [pin]}, {"matchExpressions": [zone]})
                }
            }
        ).pinned_names()
        is None
    )
    assert placement.pod_placement({"spec": {}}).pinned_names() is None


@pytest.mark.parametrize(
    "spec",
    [
        {"nodeName": 5},
        {"nodeSelector": ["a"]},
        {"affinity": "x"},
        {"affinity": affinity("x")},
        {"affinity": affinity({"matchExpressions": [{"key": "a", "operator": "Near"}]})},
        {
            "affinity": affinity(
                {"matchFields": [{"key": "spec.x", "operator": "In", "values": []}]}
            )
        },
    ],
)
def test_unreadable_placement_is_a_placement_error(spec):
    with pytest.raises(placement.PlacementError):
        placement.pod_placement({"spec": spec})


# --- NAD selectors --------------------------------------------------------------------------


def test_the_selector_is_host_devices_own_choice_normalised():
    assert decide.nad_selector(config()) == decide.DeviceSelector("device", "eth1")
    assert decide.nad_selector(config(device=None, hwaddr="AA-BB-CC-00-00-01")) == (
        decide.DeviceSelector("hwaddr", "aa:bb:cc:00:00:01")
    )
    assert decide.nad_selector(config(device=None, pciBusID="0000:3B:00.0")) == (
        decide.DeviceSelector("pciBusID", "0000:3b:00.0")
    )
    # pciBusID with a device plugin: Multus replaces it with the allocated deviceID.
    annotations = {"k8s.v1.cni.cncf.io/resourceName": "example.com/nic"}
    assert decide.nad_selector(config(device=None, pciBusID="0000:3b:00.0"), annotations) is None
    conflist = json.dumps({"name": "x", "plugins": [{"type": "tuning"}, json.loads(config())]})
    assert decide.nad_selector(conflist) == decide.DeviceSelector("device", "eth1")
    assert decide.nad_selector(config(type="macvlan")) is None
    assert decide.nad_selector(SEED_CONFIG) is None


# --- NAD decisions --------------------------------------------------------------------------


def nad_decision(text: str, inventory=None, operation="CREATE", old=None, **annotations):
    return decide.decide_nad(
        request(operation=operation),
        nad_obj(text, **annotations),
        old=nad_obj(old) if old else None,
        devices_by_node=inventory,
        plugins_by_node={"node-a": OLD_PLUGIN},
        multus_version="3.9",
    )


def test_the_seeds_nad_is_denied_for_its_comment_with_the_fix():
    decision = nad_decision(SEED_CONFIG, {"node-a": []})
    assert not decision.allowed and decision.code == 422 and decision.reason == "Invalid"
    (cause,) = decision.causes
    assert cause.code == "CONFIG_INVALID_JSON" and cause.field == "spec.config"
    assert "comment (`# the uplink`)" in cause.message and cause.fix.startswith(
        "Delete the comment"
    )
    assert "NAD default/uplink" in decision.message()


def test_a_nad_on_the_primary_nic_is_denied_naming_the_node():
    eth0 = veth(name="eth0", state="system", reason="carries the default route")
    decision = nad_decision(config(device="eth0"), {"node-a": [eth0]})
    assert "PRIMARY_NIC" in decision.codes
    assert not decision.allowed


def test_a_nad_without_a_selector_is_denied():
    decision = nad_decision(config(device=None), {"node-a": []})
    assert decision.codes == ("NO_SELECTOR",)


def test_a_cni_version_multus_cannot_take_is_denied():
    decision = nad_decision(config(cniVersion="1.0.0"), {"node-a": [veth()]})
    assert "CNI_VERSION_MULTUS" in decision.codes


def test_a_good_nad_is_allowed_and_its_warnings_are_returned():
    decision = nad_decision(config(name="other"), {"node-a": [veth()]})
    assert decision.allowed and not decision.causes
    assert any(w.startswith("NICPortal CONFIG_NAME_MISMATCH:") for w in decision.warnings)


def test_a_device_busy_in_a_pod_or_of_unknown_state_only_warns():
    in_pod = veth(state="pod", holder="pod default/web-0", has_netdev=False)
    decision = nad_decision(config(), {"node-a": [in_pod]})
    assert decision.allowed and any("DEVICE_IN_POD" in w for w in decision.warnings)
    unknown = veth(state="unknown", reason="agent silent")
    decision = nad_decision(config(), {"node-a": [unknown]})
    assert decision.allowed and any("DEVICE_NOT_FREE" in w for w in decision.warnings)


def test_an_update_is_denied_only_for_errors_the_old_object_did_not_have():
    cni = veth(state="cni", reason="Calico")
    same = nad_decision(config(), {"node-a": [cni]}, operation="UPDATE", old=config())
    assert same.allowed and any("already in the old object" in w for w in same.warnings)
    worse = nad_decision(config(device=None), {"node-a": [cni]}, operation="UPDATE", old=config())
    assert worse.codes == ("NO_SELECTOR",)


def test_a_fleet_of_errors_is_summarised_not_listed():
    inventory = {
        f"node-{i:03}": [
            veth(node=f"node-{i:03}", name="eth0", state="system", reason="default route")
        ]
        for i in range(50)
    }
    decision = nad_decision(config(device="eth0"), inventory)
    primary = [c for c in decision.causes if c.code == "PRIMARY_NIC"]
    assert len(primary) == decide.NAMED_NODES
    assert primary[-1].message.endswith("(and 47 more like it)")


def test_an_unreadable_nad_is_allowed_with_a_warning():
    obj = decide.nad_object(
        {"metadata": {"name": "x"}, "spec": {"config": {"type": "host-device"}}},
        namespace="default",
    )
    decision = decide.decide_nad(
        request(), obj, devices_by_node=None, plugins_by_node={}, multus_version=""
    )
    assert decision.allowed and "spec.config is not a string" in decision.warnings[0]


# --- pod decisions --------------------------------------------------------------------------


def attachment(text="default/fast@net1", selector=("device", "eth1"), known=True, host=True):
    (selection,) = parse_networks(text, pod_namespace="ml")
    return decide.Attachment(
        selection, known, host, decide.DeviceSelector(*selector) if selector else None
    )


def pod_decision(devices, candidates=("node-a",), teams=None, attachments=None, unknown=()):
    return decide.decide_pod(
        namespace="ml",
        pod="trainer-0",
        attachments=attachments or [attachment()],
        candidates=list(candidates),
        unknown_nodes=list(unknown),
        devices=devices,
        team_namespaces=teams or {},
    )


def test_a_pod_taking_another_teams_reserved_nic_is_denied_naming_the_team():
    reserved = veth(state="reserved", holder="team platform", reserved_team="platform")
    decision = pod_decision({"node-a": [reserved]}, teams={"ml": ["ml", "ml-*"]})
    assert not decision.allowed and decision.code == 403 and decision.reason == "Forbidden"
    (cause,) = decision.causes
    assert cause.code == "DEVICE_RESERVED" and "team platform" in cause.message
    assert "namespace ml belongs to team ml, not to team platform" in cause.message
    assert cause.field == "metadata.annotations[k8s.v1.cni.cncf.io/networks]"
    assert "createteam platform --namespace ml" in cause.fix


def test_a_pod_of_the_reserving_team_may_take_its_nic():
    reserved = veth(state="reserved", holder="team platform", reserved_team="platform")
    decision = pod_decision({"node-a": [reserved]}, teams={"platform": ["ml"]})
    assert decision.allowed and not decision.warnings


def test_in_a_teamless_namespace_the_holders_own_nad_may_take_its_nic():
    # The breach rule (rules/teams.py): a pod in the NAD's own namespace, through a NAD NICPortal
    # applied for the reserving team, is that team's.
    reserved = veth(state="reserved", holder="team platform", reserved_team="platform")
    own = replace(attachment("ml/fast@net1"), nad_team="platform")
    assert pod_decision({"node-a": [reserved]}, attachments=[own]).allowed


def test_another_teams_nad_or_another_namespace_does_not_make_the_pod_the_holders():
    reserved = veth(state="reserved", holder="team platform", reserved_team="platform")
    theirs = replace(attachment("ml/fast@net1"), nad_team="ml")
    (cause,) = pod_decision({"node-a": [reserved]}, attachments=[theirs]).causes
    assert (
        "namespace ml belongs to no team in NICPortal and NAD ml/fast was applied for team ml, "
        "not to team platform" in cause.message
    )
    # The holder's NAD used from a namespace of another team: that team's pod.
    borrowed = replace(attachment("ml/fast@net1"), nad_team="platform")
    decision = pod_decision({"node-a": [reserved]}, teams={"ml": ["ml"]}, attachments=[borrowed])
    assert decision.codes == ("DEVICE_RESERVED",)


def test_a_nic_held_by_another_pod_is_denied_naming_the_pod():
    held = veth(state="pod", holder="pod default/web-0", reason="moved into pod default/web-0")
    decision = pod_decision({"node-a": [held]})
    assert decision.codes == ("DEVICE_IN_POD",)
    assert "pod default/web-0" in decision.causes[0].message


def test_a_primary_nic_is_denied_and_a_free_one_allowed():
    primary = veth(name="eth1", state="system", reason="carries the default route")
    assert pod_decision({"node-a": [primary]}).codes == ("PRIMARY_NIC",)
    assert pod_decision({"node-a": [veth()]}).allowed


def test_one_bad_candidate_node_is_enough_to_deny():
    held = veth(node="node-b", state="pod", holder="pod x/y")
    decision = pod_decision({"node-a": [veth()], "node-b": [held]}, candidates=("node-a", "node-b"))
    assert decision.codes == ("DEVICE_IN_POD",) and "node-b/eth1" in decision.causes[0].message


def test_absent_everywhere_denies_absent_somewhere_warns():
    assert pod_decision({}).codes == ("DEVICE_MISSING",)
    decision = pod_decision({"node-a": [veth()]}, candidates=("node-a", "node-b"))
    assert decision.allowed and "DEVICE_ABSENT_ON_NODES" in decision.warnings[0]


def test_what_nicportal_cannot_judge_is_allowed_with_a_warning():
    unknown_nad = attachment(known=False, host=False, selector=None)
    decision = pod_decision({}, attachments=[unknown_nad])
    assert decision.allowed and "not in its inventory" in decision.warnings[0]
    decision = pod_decision({}, candidates=(), unknown=("node-z",))
    assert decision.allowed and "node node-z not in its inventory" in decision.warnings[0]
    stale = veth(state="unknown", reason="agent silent")
    decision = pod_decision({"node-a": [stale]})
    assert decision.allowed and decision.warnings
    macvlan = attachment(host=False, selector=None)
    assert pod_decision({}, attachments=[macvlan]) == decide.Decision(
        allowed=True, summary="pod ml/trainer-0", code=403, reason="Forbidden", judged=False
    )


def test_namespace_patterns_are_shell_patterns():
    assert decide.namespace_teams("ml-prod", {"ml": ["ml-*"], "web": ["web"]}) == {"ml"}
    assert decide.namespace_teams("mlx", {"ml": ["ml-*"]}) == set()
