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


# --- where a team may apply NADs -------------------------------------------------------------


@pytest.mark.parametrize(
    ("namespace", "pattern", "matches"),
    [
        ("ml", "ml", True),
        ("ml-train", "ml-*", True),
        ("ml-", "ml-*", True),
        ("xml-train", "ml-*", False),  # whole name, not a substring
        ("ml", "ml-*", False),
        ("ML", "ml", False),  # case-sensitive, as namespace names are lower-case
        ("infra-1", "infra-?", True),
        ("infra-12", "infra-?", False),
        ("lab-b", "lab-[ab]", True),
        ("lab-c", "lab-[ab]", False),
        ("kube-system", "*", True),
    ],
)
def test_the_one_namespace_matcher(namespace, pattern, matches):
    assert teams.namespace_matches(namespace, pattern) is matches
    # The breach rule and the webhook read a namespace's teams through the same matcher.
    assert (teams.namespace_teams(namespace, {"t": [pattern]}) == {"t"}) is matches


def refusal(**changes) -> str:
    base = {"namespace": "ml-train", "team": "ml", "patterns": ["ml", "ml-*"], "staff": False}
    return teams.apply_refusal(**{**base, **changes})


def test_a_team_may_apply_into_its_namespaces_and_patterns():
    assert refusal() == ""
    assert refusal(namespace="ml") == ""


def test_applying_elsewhere_names_the_namespace_and_where_the_team_may_apply():
    assert refusal(namespace="kube-system", patterns=["ml-*", "ml", "ml"]) == (
        "Team ml may not apply a NAD into namespace kube-system: team ml may apply into: ml, ml-*."
    )


def test_a_team_without_namespaces_may_not_apply_and_is_told_to_download():
    text = refusal(patterns=[])
    assert text.startswith("Team ml may not apply a NAD into namespace ml-train:")
    assert "may apply into no namespace" in text and "download the YAML" in text


def test_acting_for_no_team_may_not_apply():
    text = refusal(team="", patterns=[])
    assert "namespace ml-train" in text and "you act for no team" in text


@pytest.mark.parametrize("team", ["", "ml"])
def test_staff_may_apply_anywhere(team):
    assert refusal(namespace="kube-system", team=team, patterns=[], staff=True) == ""


@pytest.mark.parametrize(
    ("pattern", "ok"),
    [
        ("ml", True),
        ("ml-*", True),
        ("team-?", True),
        ("lab-[ab]", True),
        ("*", True),
        ("ML", False),
        ("ml_team", False),
        ("ml/*", False),
        ("", False),
        ("a" * 64, False),
        ("lab-[ab", False),
        (" ml", False),
    ],
)
def test_what_a_namespace_pattern_may_be(pattern, ok):
    problem = teams.pattern_problem(pattern)
    assert (problem == "") is ok
    if not ok:
        assert problem.startswith("Not a namespace name or pattern:")
