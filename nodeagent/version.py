"""The agent's release, reported in every snapshot as ``agent_version``."""

__version__ = "0.1.0"
