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

No I/O: the caller passes the namespace patterns and the NAD's team.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping


def namespace_teams(namespace: str, team_namespaces: Mapping[str, Iterable[str]]) -> frozenset[str]:
    """The teams `namespace` belongs to: each team lists namespace names or shell patterns."""
    return frozenset(
        team
        for team, patterns in team_namespaces.items()
        if any(fnmatch.fnmatchcase(namespace, pattern) for pattern in patterns)
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
