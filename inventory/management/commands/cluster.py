"""`manage.py cluster`: the registry of clusters the portal sweeps (staff only: whoever runs
manage.py on a portal host).

    manage.py cluster list
    manage.py cluster add NAME (--kubeconfig PATH | --kubeconfig-secret NS/NAME | --in-cluster)
        [--context CTX] [--agent-master-key-file PATH [--agent-master-key-previous-file PATH]]
    manage.py cluster disable NAME | enable NAME

`add` creates the entry or changes an existing one (the default cluster's row included). No
credential is ever stored: an entry names a file or a Secret that holds it (docs/CLUSTERS.md).
The cluster's name is part of every node key its agents hold (docs/agent-auth.md): renaming a
cluster means new agent keys, so there is no rename.
"""

from __future__ import annotations

import os
import re
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory.models import Cluster
from inventory.services import cluster_clients

CLUSTER_NAME = re.compile(r"[a-z0-9]([a-z0-9.-]{0,98}[a-z0-9])?")


class Command(BaseCommand):
    help = "List, add, enable or disable the clusters the portal sweeps."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True)
        actions.add_parser("list", help="the registry, one cluster a line")
        add = actions.add_parser("add", help="register a cluster, or change its entry")
        add.add_argument("name")
        source = add.add_mutually_exclusive_group()
        source.add_argument("--kubeconfig", help="path of a kubeconfig file (a mounted Secret)")
        source.add_argument(
            "--kubeconfig-secret",
            metavar="NAMESPACE/NAME",
            help="a Secret in the portal's own cluster whose `kubeconfig` key holds it",
        )
        source.add_argument(
            "--in-cluster", action="store_true", help="the portal pod's service account"
        )
        add.add_argument("--context", default="", help="kubeconfig context")
        add.add_argument(
            "--agent-master-key-file",
            default="",
            help="this cluster's agent master key (default: NICPORTAL_AGENT_MASTER_KEY)",
        )
        add.add_argument("--agent-master-key-previous-file", default="")
        for verb in ("enable", "disable"):
            actions.add_parser(verb, help=f"{verb} the sweeps of a cluster").add_argument("name")

    def handle(self, *args: Any, action: str, **options: Any) -> None:
        if action == "list":
            self._list()
        elif action == "add":
            self._add(**options)
        else:
            cluster = Cluster.objects.filter(name=options["name"]).first()
            if cluster is None:
                raise CommandError(f"no cluster named {options['name']!r}")
            cluster.enabled = action == "enable"
            cluster.save(update_fields=["enabled"])
            self.stdout.write(f"cluster {cluster.name} {action}d")

    def _list(self) -> None:
        swept = {cluster.pk for cluster in cluster_clients.sweep_targets()}
        for cluster in Cluster.objects.order_by("name"):
            registered = cluster_clients.is_registered(cluster)
            source = cluster.credentials or ("settings" if registered else "-")
            where = {
                "kubeconfig": cluster.kubeconfig,
                "secret": cluster.kubeconfig_secret,
            }.get(source, "")
            state = "swept" if cluster.pk in swept else "not swept"
            if cluster.unreachable_since:
                state += f", unreachable since {cluster.unreachable_since:%Y-%m-%d %H:%M:%S}"
            keys = cluster.agent_master_key_file or "NICPORTAL_AGENT_MASTER_KEY"
            self.stdout.write(
                f"{cluster.name}\t{source}{' ' + where if where else ''}\t"
                f"agent keys: {keys}\t{state}"
            )

    def _add(
        self,
        *,
        name: str,
        kubeconfig: str | None,
        kubeconfig_secret: str | None,
        in_cluster: bool,
        context: str,
        agent_master_key_file: str,
        agent_master_key_previous_file: str,
        **_: Any,
    ) -> None:
        if not CLUSTER_NAME.fullmatch(name):
            raise CommandError(
                f"{name!r} is not a cluster name: lower-case letters, digits, '-' and '.', "
                "at most 100, starting and ending with a letter or digit"
            )
        if agent_master_key_previous_file and not agent_master_key_file:
            raise CommandError("--agent-master-key-previous-file needs --agent-master-key-file")
        # Paths as absolute ones: the web, worker and beat processes may start elsewhere.
        kubeconfig, agent_master_key_file, agent_master_key_previous_file = (
            os.path.abspath(path) if path else ""
            for path in (kubeconfig, agent_master_key_file, agent_master_key_previous_file)
        )
        cluster = Cluster.objects.filter(name=name).first() or Cluster(name=name)
        cluster.kubeconfig = kubeconfig
        cluster.kubeconfig_secret = kubeconfig_secret or ""
        cluster.in_cluster = in_cluster
        cluster.context = context
        cluster.agent_master_key_file = agent_master_key_file
        cluster.agent_master_key_previous_file = agent_master_key_previous_file
        if not cluster_clients.is_registered(cluster):
            raise CommandError(
                f"cluster {name}: give --kubeconfig, --kubeconfig-secret or --in-cluster "
                "(only the default cluster is reached through the settings)"
            )
        try:
            cluster.full_clean()
        except ValidationError as exc:
            raise CommandError(f"cluster {name}: {'; '.join(exc.messages)}") from None
        created = cluster.pk is None
        cluster.save()
        self.stdout.write(f"cluster {name} {'registered' if created else 'updated'}")
