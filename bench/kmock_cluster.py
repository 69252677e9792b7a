"""The simulated fleet's cluster in KMock (the lab's emulator, lab.kube_api, with its gaps fixed):
the same Nodes, agent pods, Multus pods and NAD as the static API in bench.fleet.

Run: ``python -m bench.kmock_cluster --nodes 1000 --nics 16 --agent-port P --ready-file F``;
writes the API port to F once serving. KMock answers every list in one page (it ignores
`limit`), re-serialising each stored object per request.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import socket
from pathlib import Path

import kmock

from bench import fleet
from lab import kube_api


def seeded_emulator(nodes: int, nics: int, agent_port: int) -> kube_api.LabKubernetesEmulator:
    emulator = kube_api.LabKubernetesEmulator()
    objects = fleet.cluster_objects(nodes, nics, agent_port)
    for namespace in ("default", fleet.AGENT_NAMESPACE, fleet.MULTUS_NAMESPACE):
        emulator.objects["v1/namespaces", None, namespace] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "uid": f"ns-{namespace}"},
        }
    daemonset = fleet.daemonset_object()
    emulator.objects["apps/v1/daemonsets", fleet.AGENT_NAMESPACE, "nicportal-agent"] = daemonset
    for node in objects["nodes"]:
        emulator.objects["v1/nodes", None, node["metadata"]["name"]] = node
    for pod in objects["pods"]:
        meta = pod["metadata"]
        emulator.objects["v1/pods", meta["namespace"], meta["name"]] = pod
    for nad in objects["nads"]:
        meta = nad["metadata"]
        emulator.objects[kube_api.NAD_RESOURCE, meta["namespace"], meta["name"]] = nad
    return emulator


async def serve(nodes: int, nics: int, agent_port: int, ready_file: Path) -> None:
    emulator = seeded_emulator(nodes, nics, agent_port)
    with socket.socket() as probe:  # a free port on loopback for the emulator
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with emulator, kmock.Server(emulator, host="127.0.0.1", port=port):
        ready_file.write_text(str(port))
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--nics", type=int, default=16)
    parser.add_argument("--agent-port", type=int, required=True)
    parser.add_argument("--ready-file", type=Path, required=True)
    args = parser.parse_args()
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    asyncio.run(serve(args.nodes, args.nics, args.agent_port, args.ready_file))


if __name__ == "__main__":
    main()
