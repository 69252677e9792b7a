"""Whose is a pod, and may it hold a reserved NIC? The pure rule of reservation breaches.

A reservation says which team may hand a NIC to pods; Kubernetes knows nothing of teams, so a
pod's team is read from where it runs and what it used:

1. Its namespace. Staff give teams their namespaces (`manage.py createteam TEAM --namespace
   NS`, a name or a shell pattern such as `ml-*`): a pod belongs to every team whose patterns
   match its namespace.
2. A namespace that belongs to no team says nothing, so the NAD decides: a pod in the NAD's own
   namespace, attached through a NAD that NICPortal applied for a team, is that team's.

A NIC reserved by team T and held by a pod is a **breach** unless the pod is T's by rule 1, or,
its namespace being no team's, by rule 2. A namespace that belongs to other teams is never saved
by the NAD: team ml's pod using team platform's NAD from ml's namespace is still ml's pod.

The same namespaces say where a team may **apply** NADs through NICPortal (`apply_refusal`): a
user acting for team T may apply into a namespace that matches one of T's patterns; staff may
apply anywhere; a team with no namespaces, or a user acting for no team, may build and download
a NAD but not apply it. One matcher (`namespace_matches`) serves the breach rule, the admission
webhook and the apply rule, so a namespace is a team's in all three or in none.

A pattern is a namespace name (a DNS-1123 label) or a shell pattern of one: `*` (any run of
characters), `?` (one character) and `[...]` (one of a set); matching is case-sensitive and
whole-name (`ml-*` matches `ml-train`, not `xml-train`). `pattern_problem` says what is wrong
with one that is not.

No I/O: the caller passes the namespace patterns and the NAD's team.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Iterable, Mapping

# A namespace name (DNS-1123 label: lower-case letters, digits, '-') or a shell pattern of one:
# the wildcards '*', '?' and '[...]' allowed, at most 63 characters.
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9*?\[\]-]{1,63}$")
PATTERN_RULE = (
    "a DNS-1123 label: lower-case letters, digits and '-', at most 63 characters; the shell "
    "wildcards * ? [] are allowed"
)


def pattern_problem(pattern: str) -> str:
    """ "" when `pattern` is a namespace name or pattern; otherwise why it is not."""
    if not NAMESPACE_PATTERN.match(pattern):
        return f"Not a namespace name or pattern: {pattern!r} ({PATTERN_RULE})."
    if pattern.count("[") != pattern.count("]"):
        return f"Not a namespace name or pattern: {pattern!r} (unbalanced [ ])."
    return ""


def namespace_matches(namespace: str, pattern: str) -> bool:
    """Whether `namespace` is `pattern` or matches it as a shell pattern (whole name,
    case-sensitive): the one matcher of team namespaces."""
    return fnmatch.fnmatchcase(namespace, pattern)


def namespace_teams(namespace: str, team_namespaces: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """The teams `namespace` belongs to: each team lists namespace names or shell patterns."""
    return frozenset(
        team
        for team, patterns in team_namespaces.items()
        if any(namespace_matches(namespace, pattern) for pattern in patterns)
    )


def apply_refusal(*, namespace: str, team: str, patterns: Iterable[str], staff: bool) -> str:
    """ "" when a user acting for `team` ("" = no team), whose patterns are `patterns`, may apply
    a NAD into `namespace` (staff: anywhere); otherwise the sentence that says why not, naming
    the namespace and where the team may apply."""
    if staff:
        return ""
    patterns = sorted(set(patterns))
    if not team:
        return (
            f"You may not apply a NAD into namespace {namespace}: you act for no team, and only "
            "a team applies NADs, into its own namespaces. Build and download the YAML instead, "
            "or ask staff."
        )
    if any(namespace_matches(namespace, pattern) for pattern in patterns):
        return ""
    if not patterns:
        return (
            f"Team {team} may not apply a NAD into namespace {namespace}: team {team} may apply "
            "into no namespace (staff give a team its namespaces). Build and download the YAML "
            "instead."
        )
    return (
        f"Team {team} may not apply a NAD into namespace {namespace}: team {team} may apply "
        f"into: {', '.join(patterns)}."
    )


def pod_teams(
    *, namespace: str, namespace_teams: frozenset[str], nad: str, nad_team: str
) -> frozenset[str]:
    """The teams a pod in `namespace` attached through NAD `nad` ("ns/name") belongs to."""
    if namespace_teams:
        return namespace_teams
    nad_namespace = nad.partition("/")[0]
    if nad_team and nad_namespace == namespace:
        return frozenset({nad_team})
    return frozenset()


def breach(
    *,
    reserved_team: str,
    namespace: str,
    pod: str,
    nad: str,
    namespace_teams: frozenset[str],
    nad_team: str,
) -> str:
    """ "" when pod `namespace`/`pod`, attached through NAD `nad`, may hold a NIC reserved by
    `reserved_team`; otherwise the sentence that says why it is a breach."""
    if not reserved_team:
        return ""
    teams = pod_teams(
        namespace=namespace, namespace_teams=namespace_teams, nad=nad, nad_team=nad_team
    )
    if reserved_team in teams:
        return ""
    if namespace_teams:
        whose = f"namespace {namespace} belongs to team {', '.join(sorted(namespace_teams))}"
    elif nad_team:
        whose = (
            f"namespace {namespace} belongs to no team and NAD {nad} (applied for team "
            f"{nad_team}) is not in it"
            if nad.partition("/")[0] != namespace
            else f"namespace {namespace} belongs to no team and NAD {nad} was applied for team "
            f"{nad_team}"
        )
    else:
        whose = (
            f"namespace {namespace} belongs to no team and NAD {nad} was not applied through "
            "NICPortal for a team"
        )
    return f"reserved by team {reserved_team}, but in pod {namespace}/{pod} via NAD {nad}: {whose}"
