"""python -m lab up|down|status|build|pod|serve — see lab/control.py, lab/pods.py and
lab/daemon.py."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lab import components, control, daemon, pods
from lab.layout import LayoutError
from lab.state import CLUSTER_NAME, default_name, load_run_env
from lab.topology import TopologyError


def main(argv: list[str] | None = None) -> int:
    load_run_env()  # what `make run` set (var/run.env): the lab's name and folder
    name = default_name()
    parser = argparse.ArgumentParser(prog="python -m lab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="build the lab and start its daemon (idempotent)")
    up.add_argument("--name", default=name)
    up.add_argument("--layout", help="a YAML layout (default: the built-in 3-node layout)")
    up.add_argument("--portal-url", help="passed to the agents for change hints")
    up.add_argument("--api-port", type=int, help="fixed port for the API (default: a free one)")
    up.add_argument("--timeout", type=float, default=120.0)
    up.add_argument(
        "--cluster-name",
        default=CLUSTER_NAME,
        help="the portal's name for this lab's cluster, part of the agents' keys (default: lab)",
    )

    down = commands.add_parser("down", help="remove every namespace and process of the lab")
    down.add_argument("--name", default=name)

    status = commands.add_parser("status", help="where the lab's API, kubeconfig and agents are")
    status.add_argument("--name", default=name)
    status.add_argument("--json", action="store_true")

    build = commands.add_parser(
        "build", help="build the real components (kube-apiserver, etcd, CNI plugins, Multus)"
    )
    build.add_argument(
        "components", nargs="*", help=f"default: all of {sorted(components.COMPONENTS)}"
    )

    pods.add_parser(commands, name)

    serve = commands.add_parser("serve", help="the daemon itself (started by `up`)")
    serve.add_argument("--state-dir", required=True, type=Path)

    args = parser.parse_args(argv)
    try:
        if args.command == "up":
            state = control.up(
                args.name,
                layout_path=args.layout,
                portal_url=args.portal_url,
                api_port=args.api_port,
                timeout=args.timeout,
                cluster_name=args.cluster_name,
            )
            print(json.dumps(state.status(), indent=2))
            return 0
        if args.command == "down":
            print(json.dumps(control.down(args.name)))
            return 0
        if args.command == "status":
            found = control.status(args.name)
            if args.json:
                print(json.dumps(found or {"name": args.name, "running": False}, indent=2))
            elif found is None:
                print(f"lab {args.name}: not set up")
            else:
                print(f"lab {args.name}: {'running' if found['running'] else 'NOT running'}")
                print(f"  api {found['api_url']}  kubeconfig {found['kubeconfig']}")
                for node in found["nodes"]:
                    print(
                        f"  {node['name']:10} {node['netns']:24} {node['internal_ip']:12}"
                        f" {node['agent_url']}  host-device {node['host_device']}"
                        f"  multus {node['multus']}"
                    )
            return 0 if found and found["running"] else 3
        if args.command == "build":
            for name, path in components.build_all(args.components).items():
                print(f"{name:20} {components.COMPONENTS[name].version:8} {path}")
            return 0
        if args.command == "pod":
            return pods.run(args)
        return daemon.main(args.state_dir)
    except (
        LayoutError,
        control.LabError,
        TopologyError,
        components.ComponentError,
        pods.PodError,
    ) as exc:
        print(f"lab: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("lab: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`| head`): as the Python docs advise, point stdout at devnull
        # so that flushing it at exit raises nothing more.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":
    sys.exit(main())
