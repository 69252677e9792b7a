"""NAD render + validate time: inventory.rules.nad.build() for a request, then
inventory.rules.nad.lint() of the rendered config against the inventory of the NAD's nodes
(pure functions, no I/O).

    .venv/bin/python -m bench.nad_render --runs 2000 --fleet-nodes 5000

Cases: one node (device selector), a 16-node NAD, and the linter of one cluster NAD against a
--fleet-nodes x 16-interface inventory (what every sweep does per NAD, lint_cluster_nads).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from bench.stats import summary


def _devices(node: str, count: int) -> list[Any]:
    from inventory.rules import nad

    plugin = nad.PluginFacts(version="1.1.1", supported_versions=("0.3.1", "0.4.0", "1.0.0"))
    return [
        nad.DeviceFacts(
            node=node,
            name=f"ens{1 + i // 4}f{i % 4}",
            mac=f"02:00:00:00:{i // 256:02x}:{i % 256:02x}",
            pci_address=f"0000:{0x18 + i // 4:02x}:00.{i % 4}",
            driver="ice",
            plugin=plugin,
        )
        for i in range(count)
    ]


def time_case(runs: int, work: Any) -> dict[str, float]:
    work()
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return summary(times, scale=1000, digits=3)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="NAD build + lint time")
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--fleet-nodes", type=int, default=5000)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    import os

    import django

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nicportal.settings")
    django.setup()
    from inventory.rules import nad

    results: dict[str, Any] = {}
    for nodes in (1, 16):
        devices = tuple(_devices(f"node-{n:03d}", 1)[0] for n in range(nodes))
        request = nad.NadRequest(namespace="workloads", name="fast-nic", devices=devices)
        inventory = {f"node-{n:03d}": _devices(f"node-{n:03d}", 16) for n in range(nodes)}
        plugins = {node: inventory[node][0].plugin for node in inventory}
        built = nad.build(request)
        assert built.ok, built.findings
        rendered = built.nads[0]

        def build_and_lint(
            request=request, rendered=rendered, inventory=inventory, plugins=plugins
        ):
            result = nad.build(request)
            nad.lint(
                namespace=rendered.namespace,
                name=rendered.name,
                config=result.nads[0].config_json,
                annotations=result.nads[0].annotations,
                devices_by_node=inventory,
                plugins_by_node=plugins,
            )

        results[f"build+lint, {nodes} node(s)"] = time_case(args.runs, build_and_lint)
        results[f"build only, {nodes} node(s)"] = time_case(
            args.runs, lambda r=request: nad.build(r)
        )

    fleet_inventory = {
        f"sim-{n:05d}": _devices(f"sim-{n:05d}", 16) for n in range(args.fleet_nodes)
    }
    fleet_plugins = {node: devices[0].plugin for node, devices in fleet_inventory.items()}
    config = json.dumps(
        {"cniVersion": "0.4.0", "name": "fast-nic", "type": "host-device", "device": "ens4f0"}
    )
    results[f"lint one cluster NAD against {args.fleet_nodes} nodes x 16"] = time_case(
        max(5, args.runs // 200),
        lambda: nad.lint(
            namespace="workloads",
            name="fast-nic",
            config=config,
            devices_by_node=fleet_inventory,
            plugins_by_node=fleet_plugins,
        ),
    )
    for label, value in results.items():
        print(f"{label}: ms {value}", file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
