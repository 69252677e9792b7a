"""`manage.py agentkey NODE...`: the node keys to give agents that hold their own node's key only
(`python -m nodeagent --key-file`, docs/agent-auth.md), derived from this portal's master key and
cluster name. `--ids` prints only the key ids (current and previous master), which the agents
log at start-up (`event=key_loaded ... key_id=`): a way to see which key an agent holds without
printing any key. `--cluster NAME`: the keys of another registered cluster's agents (derived with
its name, from its own master key file when it has one; docs/CLUSTERS.md)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory.clients.agents import AgentKeyring
from inventory.models import Cluster
from nodeagent import auth


class Command(BaseCommand):
    help = "Print the agent key of each NODE (derived from NICPORTAL_AGENT_MASTER_KEY)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("nodes", nargs="+", metavar="NODE")
        parser.add_argument(
            "--ids", action="store_true", help="print key ids only (current, then previous)"
        )
        parser.add_argument("--cluster", help="a registered cluster (default: the portal's own)")

    def handle(
        self, *args: Any, nodes: list[str], ids: bool, cluster: str | None = None, **options: Any
    ) -> None:
        keyring = AgentKeyring.from_settings()
        if cluster is not None:
            registered = Cluster.objects.filter(name=cluster).first()
            if registered is None:
                raise CommandError(f"no cluster named {cluster!r} (manage.py cluster list)")
            keyring = AgentKeyring.for_cluster(registered)
        if not keyring:
            missing = "NICPORTAL_AGENT_MASTER_KEY (or _FILE) is not set"
            raise CommandError(keyring.problem or missing)
        for node in nodes:
            if not auth.NODE_NAME.fullmatch(node):
                raise CommandError(f"{node!r} is not a Kubernetes node name")
        for node in nodes:
            keys = keyring.node_keys(node)
            if ids:
                # keys: the current master's, then the previous one's during a rotation.
                labels = ("current", "previous")[: len(keys)]
                pairs = zip(labels, keys, strict=True)
                line = " ".join(f"{label}={auth.key_id(key)}" for label, key in pairs)
                self.stdout.write(f"{node} {line}")
            elif len(nodes) == 1:
                # Only the key, so that `manage.py agentkey n1 > agent.key` writes a key file.
                self.stdout.write(auth.format_node_key(keys[0]))
            else:
                self.stdout.write(f"{node} {auth.format_node_key(keys[0])}")
