"""Reservation requests against the database (inventory.services.capacity): a granted request
reserves every NIC it picked and hands back NADs and pod placement, a refused one reserves
nothing and names the constraint that emptied the set; both are recorded with their history."""

from __future__ import annotations

import pytest
import yaml
from django.core.exceptions import PermissionDenied, ValidationError

from inventory.choices import HistoryKind, OwnershipState, RequestOutcome
from inventory.models import HistoryEntry, Reservation, ReservationRequest
from inventory.rules.capacity import Constraints
from inventory.services import capacity, reservations
from inventory.services.errors import Conflict
from tests.api.builders import in_days, make_free_interface, make_node, make_team, make_user

CNI = {
    "host_device": {
        "path": "/opt/cni/bin/host-device",
        "version": "1.1.1",
        "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
    }
}


@pytest.fixture
def fleet(db, settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")  # annotation publishing just logs
    settings.MULTUS_VERSION = ""
    a = make_node("gpu-a", labels={"rack": "r12"}, cni=CNI)
    b = make_node("gpu-b", labels={"rack": "r12"}, cni=CNI)
    c = make_node("cpu-c", labels={"rack": "r7"}, cni=CNI)
    nics = {
        "a0": make_free_interface(a, "ens1f0", speed_mbps=25000, driver="mlx5_core", numa_node=0),
        "a1": make_free_interface(a, "ens1f1", speed_mbps=25000, driver="mlx5_core", numa_node=0),
        "b0": make_free_interface(b, "ens1f0", speed_mbps=25000, driver="mlx5_core", numa_node=1),
        "c0": make_free_interface(c, "eth1", speed_mbps=10000),
        "c1": make_free_interface(c, "eth2", speed_mbps=10000),
    }
    team = make_team("ml")
    return {"nics": nics, "team": team, "user": make_user("mia", team)}


def submit(fleet, constraints: Constraints, **fields) -> ReservationRequest:
    return capacity.submit(
        user=fleet["user"],
        team=fleet["team"],
        constraints=constraints,
        purpose=fields.pop("purpose", "training run"),
        expires_at=fields.pop("expires_at", in_days(3)),
        **fields,
    )


def test_two_25g_nics_on_one_node_are_reserved_together_with_nads_and_placement(fleet):
    request = submit(
        fleet,
        Constraints(count=2, label_selector="rack=r12", min_speed_mbps=25000, placement="one_node"),
        namespace="ml",
        nad_name="fast",
    )
    assert request.outcome == RequestOutcome.GRANTED
    granted = sorted(r.interface_id for r in request.reservations.all())
    assert granted == sorted([fleet["nics"]["a0"].pk, fleet["nics"]["a1"].pk])
    for reservation in request.reservations.all():
        assert reservation.team == fleet["team"] and reservation.active
        reservation.interface.refresh_from_db()
        assert reservation.interface.state == OwnershipState.RESERVED
    # Two NICs on one node: two NADs (one device each), and one pod that uses both there.
    assert [n["name"] for n in request.nads] == ["fast-1", "fast-2"]
    assert all(n["nodes"] == ["gpu-a"] for n in request.nads)
    manifest = yaml.safe_load(request.nads[0]["yaml"])
    assert manifest["kind"] == "NetworkAttachmentDefinition"
    assert manifest["metadata"]["namespace"] == "ml"
    pod = yaml.safe_load(request.pod_snippet.split("\n", 1)[1])
    assert pod["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] == (
        "ml/fast-1@net1, ml/fast-2@net2"
    )
    assert pod["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "gpu-a"}
    assert not [f for f in request.nad_findings if f["severity"] == "error"]
    kinds = list(HistoryEntry.objects.values_list("kind", flat=True))
    assert kinds.count(HistoryKind.RESERVE) == 2 and kinds.count(HistoryKind.REQUEST) == 1
    assert HistoryEntry.objects.filter(kind="reserve", data__request=request.pk).count() == 2


def test_spread_over_two_nodes_gives_one_placement_per_node(fleet):
    request = submit(
        fleet,
        Constraints(count=2, min_speed_mbps=25000, placement="spread", spread_nodes=2),
    )
    assert request.outcome == RequestOutcome.GRANTED
    nodes = sorted(r.interface.node.name for r in request.reservations.all())
    assert nodes == ["gpu-a", "gpu-b"]
    assert request.nad_name == f"request-{request.pk}"
    assert {node for n in request.nads for node in n["nodes"]} == {"gpu-a", "gpu-b"}
    assert "gpu-a" in request.pod_snippet and "gpu-b" in request.pod_snippet


def test_a_request_that_cannot_be_met_reserves_nothing_and_names_the_constraint(fleet):
    request = submit(fleet, Constraints(count=1, label_selector="rack=r7", min_speed_mbps=25000))
    assert request.outcome == RequestOutcome.REFUSED
    assert request.explanation.startswith("speed ≥ 25000 Mb/s left 0 of 2; closest: ")
    assert "cpu-c/eth1 (speed 10000 Mb/s)" in request.explanation
    assert request.steps[-1] == {
        "field": "min_speed_mbps",
        "text": "speed ≥ 25000 Mb/s",
        "before": 2,
        "after": 0,
    }
    assert request.closest[0]["fails"] == ["speed 10000 Mb/s"]
    assert not Reservation.objects.exists()
    entry = HistoryEntry.objects.get(kind=HistoryKind.REQUEST)
    assert "refused: speed ≥ 25000 Mb/s left 0 of 2" in entry.message
    assert entry.data["failed"] == "min_speed_mbps"


def test_all_or_none_a_partly_taken_set_reserves_nothing(fleet):
    first = submit(fleet, Constraints(count=1, nodes=("gpu-b",)))
    assert first.outcome == RequestOutcome.GRANTED
    # Three 25G NICs, one of them now reserved: asking for three reserves none.
    request = submit(fleet, Constraints(count=3, min_speed_mbps=25000))
    assert request.outcome == RequestOutcome.REFUSED
    assert request.explanation == "3 asked, 2 match"
    assert Reservation.objects.count() == 1


def test_reserved_nics_are_named_with_their_team_in_the_closest(fleet):
    submit(fleet, Constraints(count=2, nodes=("cpu-c",)))
    request = submit(fleet, Constraints(count=1, nodes=("cpu-c",)))
    assert request.outcome == RequestOutcome.REFUSED
    assert request.explanation.startswith("free (not in use, not reserved) left 0 of 2")
    assert "reserved by team ml" in request.explanation


def test_preview_changes_nothing(fleet):
    match = capacity.preview(Constraints(count=2, min_speed_mbps=25000))
    assert match.ok and match.matched == 3
    assert not Reservation.objects.exists() and not ReservationRequest.objects.exists()


def test_bad_fields_are_refused_by_name(fleet):
    with pytest.raises(ValidationError) as caught:
        submit(
            fleet,
            Constraints(count=0, label_selector="rack in (r1"),
            purpose=" ",
            expires_at=in_days(-1),
            namespace="Not_A_Label",
        )
    assert set(caught.value.message_dict) == {
        "count",
        "label_selector",
        "purpose",
        "expires_at",
        "namespace",
    }


def test_only_members_act_for_the_team(fleet):
    outsider = make_user("oscar", make_team("storage"))
    with pytest.raises(PermissionDenied):
        capacity.submit(
            user=outsider,
            team=fleet["team"],
            constraints=Constraints(count=1),
            purpose="x",
            expires_at=in_days(1),
        )
    assert not ReservationRequest.objects.exists()


def test_a_nic_taken_between_the_match_and_the_reservation_makes_the_request_start_over(
    fleet, monkeypatch
):
    """The first read still shows gpu-a/ens1f0 free, but a single reservation takes it before
    the request locks its picks: that attempt writes nothing, the next one reads again and
    picks around it."""
    real = capacity.inventory.match
    reads = []
    taken = fleet["nics"]["a0"]
    other = make_team("platform")

    def match(constraints, cluster=None):
        found = real(constraints, cluster)
        if not reads:
            reservations.reserve(
                interface_id=taken.pk,
                team=other,
                user=make_user("pat", other),
                purpose="got there first",
                expires_at=in_days(1),
            )
        reads.append(found.matched)
        return found

    monkeypatch.setattr(capacity.inventory, "match", match)
    request = submit(fleet, Constraints(count=2, min_speed_mbps=25000))
    assert len(reads) == 2
    assert request.outcome == RequestOutcome.GRANTED
    granted = {r.interface_id for r in request.reservations.all()}
    assert granted == {fleet["nics"]["a1"].pk, fleet["nics"]["b0"].pk}
    assert Reservation.objects.filter(interface=taken, released_at__isnull=True).get().team == other
    assert ReservationRequest.objects.count() == 1


def test_when_the_attempts_run_out_nothing_is_reserved(fleet, monkeypatch):
    monkeypatch.setattr(capacity, "MAX_ATTEMPTS", 0)
    with pytest.raises(Conflict, match="nothing was reserved"):
        submit(fleet, Constraints(count=1))
    assert not Reservation.objects.exists() and not ReservationRequest.objects.exists()
