"""The lab's cluster network plugin: what Calico's CNI plugin does for a pod's eth0.

Real Multus delegates every pod's eth0 to the cluster network first (its `delegates`, here a
conflist named `k8s-pod-network` as Calico installs it). Calico itself (calico-node, Felix, its
datastore) is not part of the lab, so this executable plays its CNI plugin, with the real
host-local plugin as IPAM (a configuration Calico supports): ADD makes a veth whose host end
stays in the node as `cali<hash>` and whose other end is the pod's `eth0` with a /32 address,
and prints a CNI result; DEL removes the veth and releases the address. Multus runs it in the
node's network namespace, as it runs every delegate, with the standard CNI environment.

    CNI_COMMAND=ADD CNI_NETNS=/run/netns/X CNI_IFNAME=eth0 ... python -m lab.calico_cni < conf
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

CNI_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0"]


class PluginError(Exception):
    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code, self.msg, self.details = code, msg, details


def host_link_name(pod_uid: str) -> str:
    """`cali` + 11 hex digits: Calico's host-side veth name (here from the pod's UID)."""
    return "cali" + hashlib.sha1(pod_uid.encode()).hexdigest()[:11]


def _cni_args(raw: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in raw.split(";") if "=" in part)


def _ip(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run(["ip", *args], input=stdin, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PluginError(11, f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _ipam(command: str, conf: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    """Run the IPAM plugin named in the config, from CNI_PATH, as libcni's ExecPlugin does."""
    ipam_type = str((conf.get("ipam") or {}).get("type") or "")
    if not re.fullmatch(r"[\w.-]+", ipam_type):
        raise PluginError(7, f"ipam type {ipam_type!r} is not a plugin name")
    for directory in env.get("CNI_PATH", "").split(os.pathsep):
        plugin = Path(directory) / ipam_type
        if directory and plugin.is_file():
            break
    else:
        raise PluginError(7, f'failed to find plugin "{ipam_type}" in path [{env["CNI_PATH"]}]')
    done = subprocess.run(
        [str(plugin)],
        input=json.dumps(conf),
        env={**env, "CNI_COMMAND": command},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        try:
            error = json.loads(done.stdout)
            raise PluginError(int(error.get("code", 999)), str(error.get("msg")))
        except (json.JSONDecodeError, AttributeError):
            raise PluginError(999, (done.stderr or done.stdout).strip()) from None
    return json.loads(done.stdout) if done.stdout.strip() else {}


def add(conf: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    netns_path, ifname = env["CNI_NETNS"], env["CNI_IFNAME"]
    netns = Path(netns_path).name  # `ip` takes the name of a namespace under /run/netns
    uid = _cni_args(env.get("CNI_ARGS", "")).get("K8S_POD_UID") or env["CNI_CONTAINERID"]
    host_end = host_link_name(uid)
    allocated = _ipam("ADD", conf, env)
    addresses = [ip["address"].split("/")[0] for ip in allocated.get("ips") or []]
    if not addresses:
        raise PluginError(11, "IPAM gave the pod no address")
    try:
        _ip(
            "-force", "-batch", "-",
            stdin=f"link add {host_end} type veth peer name {ifname} netns {netns}\n"
            f"link set {host_end} up\n",
        )  # fmt: skip
        _ip(
            "-n", netns, "-force", "-batch", "-",
            stdin=f"link set {ifname} up\n"
            + "".join(f"addr add {address}/32 dev {ifname}\n" for address in addresses),
        )  # fmt: skip
        # The pod reaches its node through the host end, as Calico routes a workload.
        _ip("-batch", "-", stdin="".join(f"route add {a}/32 dev {host_end}\n" for a in addresses))
        links = json.loads(_ip("-n", netns, "-j", "link", "show", "dev", ifname))
        host = json.loads(_ip("-j", "link", "show", "dev", host_end))
    except PluginError:
        subprocess.run(["ip", "link", "del", host_end], capture_output=True, check=False)
        _ipam("DEL", conf, env)
        raise
    return {
        "cniVersion": conf.get("cniVersion", "0.3.1"),
        "interfaces": [
            {"name": host_end, "mac": host[0]["address"]},
            {"name": ifname, "mac": links[0]["address"], "sandbox": netns_path},
        ],
        "ips": [
            {"version": "4", "address": f"{address}/32", "interface": 1} for address in addresses
        ],
        "dns": {},
    }


def delete(conf: dict[str, Any], env: dict[str, str]) -> None:
    uid = _cni_args(env.get("CNI_ARGS", "")).get("K8S_POD_UID") or env["CNI_CONTAINERID"]
    # The veth goes with either end; DEL must succeed when it is gone already.
    subprocess.run(["ip", "link", "del", host_link_name(uid)], capture_output=True, check=False)
    _ipam("DEL", conf, env)


def main() -> int:
    env = dict(os.environ)
    command = env.get("CNI_COMMAND", "")
    try:
        if command == "VERSION":
            print(json.dumps({"cniVersion": "1.0.0", "supportedVersions": CNI_VERSIONS}))
            return 0
        conf = json.loads(sys.stdin.read() or "{}")
        if command == "ADD":
            print(json.dumps(add(conf, env)))
        elif command == "DEL":
            delete(conf, env)
        elif command in ("CHECK", "GC", "STATUS"):
            pass
        else:
            raise PluginError(4, f"unknown CNI_COMMAND {command!r}")
    except PluginError as exc:
        error = {"cniVersion": "0.3.1", "code": exc.code, "msg": exc.msg}
        if exc.details:
            error["details"] = exc.details
        print(json.dumps(error))
        return 1
    except (KeyError, json.JSONDecodeError) as exc:
        print(json.dumps({"cniVersion": "0.3.1", "code": 4, "msg": f"bad CNI input: {exc}"}))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
