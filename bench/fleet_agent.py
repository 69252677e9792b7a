"""The agent client for the simulated fleet. Imports the portal's models (through
inventory.clients.agents): import it only once Django is set up (bench.portal.configure())."""

from __future__ import annotations

from bench import fleet
from inventory.clients.agents import AgentClient, AgentKeyring, SnapshotResult


class FleetAgentClient(AgentClient):
    """The real AgentClient (libcurl, ETag, size limit, JSON Schema validation); only the
    URL differs. All simulated agents share one host:port (the pods' hostIP 127.0.0.1 and the
    simulator's port), so the node's path is appended: http://127.0.0.1:PORT/n/<node>."""

    def fetch(self, url: str, *, node: str, etag: str = "") -> SnapshotResult:
        return super().fetch(f"{url.rstrip('/')}/n/{node}", node=node, etag=etag)

    @classmethod
    def for_fleet(cls, **kwargs) -> FleetAgentClient:
        """Holding the simulated fleet's master key, as the portal holds its own."""
        keyring = AgentKeyring([fleet.MASTER_KEY.encode()], cluster=fleet.CLUSTER_NAME)
        return cls(keyring=keyring, **kwargs)
