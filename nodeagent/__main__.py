"""``python -m nodeagent``: wire config, collector, hints and the HTTP server together."""

from __future__ import annotations

import signal
import sys
import threading

from nodeagent.cni import CniProbe
from nodeagent.collector import CollectorError, LocalCollector, NetnsCollector
from nodeagent.config import parse_args
from nodeagent.hints import HintSender
from nodeagent.http_api import AgentHTTPServer
from nodeagent.keys import KeyFileError, NodeKey
from nodeagent.logs import log
from nodeagent.snapshot import SnapshotBuilder
from nodeagent.version import __version__


def main(argv: list[str] | None = None) -> int:
    config = parse_args(argv)
    log("info", "starting", version=__version__, node=config.node_name, netns=config.netns)
    try:
        key = NodeKey(
            config.key_file,
            node=config.node_name,
            cluster=config.cluster_name,
            master=config.master_key,
        )
    except KeyFileError as error:
        log("error", "bad_key_file", detail=str(error))
        return 2
    log("info", "key_loaded", kind=key.kind, key_id=next(iter(key.keys())))

    hints = None
    if config.portal_url:
        hints = HintSender(portal_url=config.portal_url, node=config.node_name, key=key)
    on_change = hints.notify if hints else None
    if config.netns:
        collector = NetnsCollector(
            config.netns, config.sysfs_root, on_change=on_change, pci_scan=config.pci_scan
        )
    else:
        collector = LocalCollector(config.sysfs_root, on_change=on_change, pci_scan=config.pci_scan)
    try:
        collector.start()
    except CollectorError as error:
        log("error", "netns_missing" if config.netns else "collector_failed", detail=str(error))
        return 1
    snapshots = SnapshotBuilder(
        node=config.node_name,
        netns=config.netns,
        collector=collector,
        cni=CniProbe(config.cni_bin_dirs),
    )
    try:
        server = AgentHTTPServer((config.host, config.port), snapshots=snapshots, key=key)
    except OSError as error:
        log("error", "listen_failed", host=config.host, port=config.port, detail=str(error))
        collector.stop()
        return 1
    if hints:
        hints.start()

    def shut_down(signum: int, _frame: object) -> None:
        log("info", "stopping", signal=signal.Signals(signum).name)
        # shutdown() waits for serve_forever() to return: never call it from that thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, shut_down)
    signal.signal(signal.SIGINT, shut_down)
    host, port = server.server_address[:2]
    log("info", "listening", host=host, port=port, portal_url=config.portal_url)
    try:
        server.serve_forever(poll_interval=0.5)
    finally:
        server.server_close()
        if hints:
            hints.stop()
        collector.stop()
    log("info", "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
