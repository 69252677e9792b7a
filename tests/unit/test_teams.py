"""rules/teams.py: whose a pod is, and when a reserved NIC in a pod is a breach."""

from __future__ import annotations

import pytest

from inventory.rules import teams

PATTERNS = {"ml": ["ml", "ml-*"], "platform": ["platform", "infra-?"], "both": ["shared"]}


@pytest.mark.parametrize(
    ("namespace", "expected"),
    [
        ("ml", {"ml"}),
        ("ml-train", {"ml"}),
        ("mlx", set()),
        ("infra-1", {"platform"}),
        ("infra-12", set()),
        ("shared", {"both"}),
        ("default", set()),
    ],
)
def test_a_namespace_belongs_to_the_teams_whose_patterns_match_it(namespace, expected):
    assert teams.namespace_teams(namespace, PATTERNS) == expected


def test_two_teams_may_share_a_namespace():
    assert teams.namespace_teams("lab", {"a": ["lab"], "b": ["l*"]}) == {"a", "b"}


def breach(**changes) -> str:
    base = {
        "reserved_team": "platform",
        "namespace": "ml",
        "pod": "trainer-0",
        "nad": "ml/grab",
        "namespace_teams": frozenset(),
        "nad_team": "",
    }
    return teams.breach(**{**base, **changes})


def test_a_pod_of_another_teams_namespace_is_a_breach_naming_both_teams():
    text = breach(namespace_teams=frozenset({"ml"}))
    assert text == (
        "reserved by team platform, but in pod ml/trainer-0 via NAD ml/grab: namespace ml "
        "belongs to team ml"
    )


def test_a_pod_of_the_reserving_teams_namespace_is_no_breach():
    assert breach(namespace_teams=frozenset({"ml", "platform"})) == ""


def test_a_teamless_namespace_with_a_nad_made_outside_nicportal_is_a_breach():
    assert breach() == (
        "reserved by team platform, but in pod ml/trainer-0 via NAD ml/grab: namespace ml "
        "belongs to no team and NAD ml/grab was not applied through NICPortal for a team"
    )


def test_a_teamless_namespace_using_the_holders_own_nad_is_no_breach():
    assert breach(nad_team="platform") == ""


def test_the_holders_nad_from_another_namespace_does_not_make_the_pod_theirs():
    text = breach(nad="platform/fast", nad_team="platform")
    assert "NAD platform/fast (applied for team platform) is not in it" in text


def test_the_holders_nad_does_not_save_a_pod_of_another_teams_namespace():
    assert "belongs to team ml" in breach(namespace_teams=frozenset({"ml"}), nad_team="platform")


def test_another_teams_nad_in_a_teamless_namespace_is_a_breach():
    assert "was applied for team ml" in breach(nad_team="ml")


def test_an_unreserved_nic_is_never_a_breach():
    assert breach(reserved_team="") == ""


def test_pod_teams_follow_the_namespace_first():
    assert teams.pod_teams(
        namespace="ml", namespace_teams=frozenset({"ml"}), nad="ml/x", nad_team="platform"
    ) == {"ml"}
    assert teams.pod_teams(
        namespace="ml", namespace_teams=frozenset(), nad="ml/x", nad_team="platform"
    ) == {"platform"}
