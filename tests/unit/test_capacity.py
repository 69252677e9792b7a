"""The pure matcher of reservation requests: filters in order with their counts, placement,
and the explanation of a request that cannot be met."""

from __future__ import annotations

import pytest

from inventory.rules.capacity import (
    Candidate,
    Constraints,
    Moved,
    Step,
    constraint_problems,
    counted,
    match,
    parse_label_selector,
)


def nic(pk: int, node: str, name: str = "ens1f0", **facts) -> Candidate:
    facts.setdefault("speed_mbps", 10000)
    facts.setdefault("driver", "ixgbe")
    facts.setdefault("vendor_id", "0x8086")
    facts.setdefault("device_id", "0x10fb")
    return Candidate(id=pk, node=node, name=name, **facts)


def fleet() -> list[Candidate]:
    """Three nodes: a (rack r1, 2 x 25G mlx5 on NUMA 0 and 1), b (rack r1, 3 x 10G), c (rack r2,
    one 100G mlx5 SR-IOV, one 25G in a pod)."""
    return [
        nic(1, "a", "ens1f0", labels={"rack": "r1"}, speed_mbps=25000, driver="mlx5_core",
            vendor_id="0x15b3", device_id="0x1017", numa_node=0),
        nic(2, "a", "ens1f1", labels={"rack": "r1"}, speed_mbps=25000, driver="mlx5_core",
            vendor_id="0x15b3", device_id="0x1017", numa_node=1),
        nic(3, "b", "eth1", labels={"rack": "r1"}, numa_node=0),
        nic(4, "b", "eth2", labels={"rack": "r1"}, numa_node=0),
        nic(5, "b", "eth3", labels={"rack": "r1"}, numa_node=0),
        nic(6, "c", "p0", labels={"rack": "r2", "gpu": "a100"}, speed_mbps=100000,
            driver="mlx5_core", vendor_id="0x15b3", device_id="0x101d", sriov_total_vfs=8),
        nic(7, "c", "p1", labels={"rack": "r2", "gpu": "a100"}, speed_mbps=25000,
            free=False, not_free_reason="in a pod: ml/train-0"),
    ]  # fmt: skip


def ids(result) -> list[int]:
    return [n.id for n in result.picked]


def test_any_placement_takes_the_first_in_node_order_and_counts_every_step():
    result = match(fleet(), Constraints(count=2, min_speed_mbps=25000))
    assert result.ok
    assert ids(result) == [1, 2]
    assert [(s.field, s.before, s.after) for s in result.steps] == [
        ("min_speed_mbps", 7, 4),
        ("free", 4, 3),
        ("count", 3, 2),
    ]


def test_the_filter_that_empties_the_set_is_named_with_its_counts_and_the_closest_nics():
    result = match(fleet(), Constraints(count=1, label_selector="rack=r1", min_speed_mbps=40000))
    assert not result.ok
    assert result.failed_step.field == "min_speed_mbps"
    assert result.explanation.startswith("speed ≥ 40000 Mb/s left 0 of 5; closest: ")
    # The closest fail one constraint each; those that reached the speed filter (rack r1) come
    # before the 100G NIC of rack r2 that fails only the label selector, fastest first.
    assert [n.candidate.id for n in result.closest] == [1, 2, 3, 4, 5]
    assert result.closest[0].fails == ("speed 25000 Mb/s",)
    wider = match(fleet(), Constraints(count=1, label_selector="rack=r1", min_speed_mbps=90000))
    assert wider.closest[0].fails == ("speed 25000 Mb/s",)
    assert all(len(n.fails) == 1 for n in wider.closest)
    assert "a/ens1f0 (speed 25000 Mb/s)" in result.explanation


def test_free_is_the_last_filter_and_names_who_holds_the_rest():
    result = match(fleet(), Constraints(count=1, nodes=("c",), sriov=False))
    assert not result.ok
    assert result.failed_step.field == "free"
    assert "free (not in use, not reserved) left 0 of 1" in result.explanation
    assert "in a pod: ml/train-0" in result.explanation


def test_count_larger_than_the_matches_says_both_numbers():
    result = match(fleet(), Constraints(count=4, driver="mlx5_core"))
    assert not result.ok
    assert result.failed_step.field == "count"
    assert result.explanation == "4 asked, 3 match"
    assert [s.after for s in result.steps] == [3, 3, 0]


def test_one_node_picks_the_best_fit_node():
    # b has 3 free 10G NICs, a has 2 25G: 2 on one node fits a exactly, leaving b whole.
    result = match(fleet(), Constraints(count=2, placement="one_node", label_selector="rack=r1"))
    assert ids(result) == [1, 2]
    result = match(fleet(), Constraints(count=3, placement="one_node"))
    assert ids(result) == [3, 4, 5]


def test_one_node_failure_names_the_largest_group():
    result = match(fleet(), Constraints(count=3, placement="one_node", min_speed_mbps=25000))
    assert not result.ok
    assert result.failed_step.field == "placement"
    assert result.explanation == (
        "3 on one node: 3 match but no node has 3 (the most on one node: 2 on a)"
    )


def test_one_numa_puts_every_nic_on_one_numa_node_of_one_node():
    # a has 2 NICs but on NUMA 0 and 1; b has 3 on NUMA 0: two on one NUMA node fit only b.
    result = match(fleet(), Constraints(count=2, placement="one_numa", label_selector="rack=r1"))
    assert ids(result) == [3, 4]
    assert result.steps[-1] == Step("placement", "2 on one NUMA node", 5, 2)
    # One on one NUMA node: the best fit is a NUMA node with one, a's NUMA 0 (before a's 1).
    assert ids(match(fleet(), Constraints(count=1, placement="one_numa"))) == [1]


def test_one_numa_failure_names_the_largest_numa_group_or_the_unknown_numa():
    result = match(fleet(), Constraints(count=2, placement="one_numa", min_speed_mbps=25000))
    assert not result.ok and result.failed_step.field == "placement"
    assert result.explanation == (
        "2 on one NUMA node: 3 match but no NUMA node of one node has 2 "
        "(the most on one NUMA node: 1 on a NUMA node 1)"
    )
    result = match(fleet(), Constraints(count=1, placement="one_numa", nodes=("c",)))
    assert result.explanation == (
        "1 on one NUMA node: 1 match but the NUMA node of every one is unknown"
    )
    assert [n.candidate.id for n in result.closest] == [6]


def test_spread_over_n_nodes_is_as_even_as_the_count_allows():
    result = match(fleet(), Constraints(count=3, placement="spread", spread_nodes=2))
    picked = [n.node for n in result.picked]
    assert sorted(picked) == ["a", "b", "b"]
    result = match(fleet(), Constraints(count=3, placement="spread", spread_nodes=3))
    assert sorted(n.node for n in result.picked) == ["a", "b", "c"]


def test_spread_over_more_nodes_than_match_fails_with_the_numbers():
    result = match(fleet(), Constraints(count=2, placement="spread", spread_nodes=2, sriov=True))
    assert not result.ok
    assert result.failed_step.field == "placement"
    assert "1 match on 1 node(s)" in result.explanation


def test_pci_ids_match_with_or_without_0x_and_in_any_case():
    result = match(fleet(), Constraints(count=1, vendor_id="15B3", device_id="0x101D"))
    assert ids(result) == [6]


def test_numa_and_sriov_and_driver_filters():
    assert ids(match(fleet(), Constraints(count=1, numa_node=1))) == [2]
    assert ids(match(fleet(), Constraints(count=1, sriov=True))) == [6]
    result = match(fleet(), Constraints(count=1, driver="ice"))
    assert result.failed_step.field == "driver"
    assert result.explanation.startswith("driver ice left 0 of 7; closest: ")


def test_unknown_speed_never_meets_a_speed_floor():
    result = match([nic(1, "a", speed_mbps=None)], Constraints(count=1, min_speed_mbps=1000))
    assert result.closest[0].fails == ("speed unknown",)


def test_an_empty_inventory_says_so():
    result = match([], Constraints(count=1))
    assert (
        result.explanation
        == "free (not in use, not reserved) left 0 of 0 (no NIC in the inventory)"
    )


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("rack=r1", {"rack": "r1"}, True),
        ("rack==r1", {"rack": "r2"}, False),
        ("rack!=r1", {}, True),
        ("gpu in (a100, h100)", {"gpu": "h100"}, True),
        ("gpu notin (a100,h100)", {"gpu": "a100"}, False),
        ("gpu", {"gpu": ""}, True),
        ("!gpu", {"gpu": "x"}, False),
        ("rack=r1,gpu in (a100)", {"rack": "r1", "gpu": "a100"}, True),
        ("example.com/tier=fast", {"example.com/tier": "fast"}, True),
    ],
)
def test_label_selectors_follow_kubernetes(selector, labels, expected):
    requirements, problem = parse_label_selector(selector)
    assert problem == ""
    assert all(r.matches(labels) for r in requirements) is expected


@pytest.mark.parametrize(
    ("selector", "problem"),
    [
        ("rack=r1,", "empty term"),
        ("gpu in (a100", "'(' is not closed"),
        ("rack=r 1", "is not a label value"),
        ("ra ck", "is not a label key"),
        ("gpu in ()", "is not a label value"),
    ],
)
def test_bad_label_selectors_say_why(selector, problem):
    assert problem in parse_label_selector(selector)[1]


@pytest.mark.parametrize(
    ("constraints", "field", "words"),
    [
        (Constraints(count=0), "count", "1 to 64"),
        (Constraints(count=65), "count", "1 to 64"),
        (Constraints(label_selector="a=(b"), "label_selector", "Not a label selector"),
        (Constraints(min_speed_mbps=0), "min_speed_mbps", "at least 1"),
        (Constraints(vendor_id="intel"), "vendor_id", "four hex digits"),
        (Constraints(numa_node=-1), "numa_node", "0 or more"),
        (Constraints(placement="rack"), "placement", "any, one_node, one_numa, spread"),
        (Constraints(placement="spread"), "spread_nodes", "over how many nodes"),
        (
            Constraints(count=2, placement="spread", spread_nodes=3),
            "spread_nodes",
            "1 to the count",
        ),
        (Constraints(spread_nodes=1), "spread_nodes", 'Only with placement "spread"'),
    ],
)
def test_constraint_problems_name_the_field_and_rule(constraints, field, words):
    problems = constraint_problems(constraints)
    assert list(problems) == [field]
    assert words in problems[field][0]


def test_valid_constraints_have_no_problems():
    assert constraint_problems(
        Constraints(count=4, placement="spread", spread_nodes=2, label_selector="rack=r1",
                    vendor_id="0x8086", numa_node=0, min_speed_mbps=25000)
    ) == {}  # fmt: skip


def test_counted_says_when_the_nics_read_are_fewer_than_counted():
    nics = {n.id: n for n in fleet()}
    per_node = {"a": 2, "b": 3, "c": 1}
    found = counted(
        Constraints(count=2), [7, 6], per_node, load=lambda _nodes: [nics[1], nics[2]],
        near=lambda _steps: [],
    )  # fmt: skip
    assert ids(found) == [1, 2]
    with pytest.raises(Moved):  # another request took a's ens1f1 between count and read
        counted(
            Constraints(count=2), [7, 6], per_node, load=lambda _nodes: [nics[1]],
            near=lambda _steps: [],
        )  # fmt: skip
