"""Command line and environment: every flag also reads NICPORTAL_AGENT_<FLAG>."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

from nodeagent.auth import NODE_NAME
from nodeagent.cni import DEFAULT_BIN_DIRS


@dataclass(frozen=True)
class AgentConfig:
    host: str
    port: int
    key_file: str  # this node's key, or the master key when master_key is True
    master_key: bool
    cluster_name: str  # part of the key derivation: the portal's NICPORTAL_CLUSTER_NAME
    node_name: str
    netns: str | None
    portal_url: str | None
    sysfs_root: str
    cni_bin_dirs: tuple[str, ...]
    # Report PCI network functions that have no netdev here. Off for namespaces that own no
    # PCI devices (the lab's nodes share the host's PCI bus, whose NICs are not theirs).
    pci_scan: bool = True


def parse_listen(value: str) -> tuple[str, int]:
    """``HOST:PORT`` or ``[V6]:PORT`` -> (host, port)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    host = host.removeprefix("[").removesuffix("]")
    return host or "0.0.0.0", int(port)


def parse_args(argv: list[str] | None = None, environ: dict | None = None) -> AgentConfig:
    env = os.environ if environ is None else environ

    def default(flag: str, fallback: str | None = None) -> str | None:
        return env.get("NICPORTAL_AGENT_" + flag.upper().replace("-", "_")) or fallback

    parser = argparse.ArgumentParser(
        prog="python -m nodeagent",
        description="NICPortal node agent: serves this node's NIC facts as a JSON snapshot.",
    )
    parser.add_argument("--listen", default=default("listen"), help="HOST:PORT to serve on")
    parser.add_argument(
        "--key-file", default=default("key-file"), help="this node's key (manage.py agentkey)"
    )
    parser.add_argument(
        "--master-key-file",
        default=default("master-key-file"),
        help="the portal's master key, to derive this node's key from (instead of --key-file)",
    )
    parser.add_argument(
        "--cluster-name",
        default=default("cluster-name", "default"),
        help="the portal's NICPORTAL_CLUSTER_NAME (used with --master-key-file)",
    )
    parser.add_argument("--token-file", default=default("token-file"), help=argparse.SUPPRESS)
    parser.add_argument("--node-name", default=default("node-name"), help="Kubernetes node name")
    parser.add_argument("--netns", default=default("netns"), help="watch this named netns")
    parser.add_argument("--portal-url", default=default("portal-url"), help="for change hints")
    parser.add_argument("--sysfs-root", default=default("sysfs-root", "/sys"))
    parser.add_argument(
        "--cni-bin-dirs",
        default=default("cni-bin-dirs", ":".join(DEFAULT_BIN_DIRS)),
        help="colon-separated CNI plugin directories",
    )
    parser.add_argument(
        "--no-pci-scan",
        dest="pci_scan",
        action="store_false",
        default=(default("pci-scan", "1") or "1").lower() not in ("0", "false", "no", "off"),
        help="do not report netdev-less PCI functions (namespaces that own no PCI devices)",
    )
    args = parser.parse_args(argv)
    if args.token_file:
        parser.error(
            "--token-file (NICPORTAL_AGENT_TOKEN_FILE) is gone: the agent no longer shares a token "
            "with the portal; give it --key-file or --master-key-file (docs/agent-auth.md)"
        )
    if bool(args.key_file) == bool(args.master_key_file):
        parser.error(
            "exactly one of --key-file (NICPORTAL_AGENT_KEY_FILE) and --master-key-file "
            "(NICPORTAL_AGENT_MASTER_KEY_FILE) is required"
        )
    for flag in ("listen", "node_name"):
        if not getattr(args, flag):
            env_name = "NICPORTAL_AGENT_" + flag.upper()
            parser.error(f"--{flag.replace('_', '-')} (or {env_name}) is required")
    try:
        host, port = parse_listen(args.listen)
    except ValueError as error:
        parser.error(str(error))
    if not NODE_NAME.fullmatch(args.node_name):
        parser.error(f"--node-name must be a Kubernetes node name, got {args.node_name!r}")
    if args.portal_url and not args.portal_url.startswith(("http://", "https://")):
        parser.error(f"--portal-url must be an http(s) URL, got {args.portal_url!r}")
    if args.netns and ("/" in args.netns or args.netns in (".", "..")):
        parser.error(f"--netns must be a name under /run/netns, got {args.netns!r}")
    return AgentConfig(
        host=host,
        port=port,
        key_file=args.key_file or args.master_key_file,
        master_key=bool(args.master_key_file),
        cluster_name=args.cluster_name,
        node_name=args.node_name,
        netns=args.netns or None,
        portal_url=args.portal_url or None,
        sysfs_root=args.sysfs_root,
        cni_bin_dirs=tuple(d for d in args.cni_bin_dirs.split(":") if d),
        pci_scan=args.pci_scan,
    )
