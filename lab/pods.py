"""`python -m lab pod create|delete|list|netns`: pods on a running lab, the way a user runs them.

    python -m lab pod create NAME [-n NS] [--node N | -f pod.yaml] [--network [NS/]NAD[@IFNAME]]...
    python -m lab pod delete NAME [-n NS]
    python -m lab pod list [-n NS | -A]
    python -m lab pod netns NAME [-n NS]     # the pod's network namespace, for `ip -n`

Every command takes `--lab NAME` (default: $NICPORTAL_LAB_NAME, from var/run.env when `make run`
started the lab, else `demo`) and talks to that lab's kube-apiserver with its admin kubeconfig,
as lab/handle.py does. `create` checks the name, the node and every NAD first, creates the pod
(bound to --node, or left to the lab kubelet's scheduling by the file's nodeSelector and node
affinity, so the NAD builder's pod snippet works as a file), then waits until it is Running or
has failed (FailedCreatePodSandBox with Multus' and host-device's own words, FailedScheduling)
and prints its node and the interfaces it got. A failed pod stays, as with kubectl, and the
kubelet keeps retrying it. `delete` waits until the pod is gone and every NIC host-device moved
into it is back on its node. Any error is one line on stderr and exit status 1.
"""

from __future__ import annotations

import argparse
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
import yaml
from kubernetes.client import ApiException
from kubernetes.config import ConfigException

from lab import control, multus, topology
from lab.handle import NAD_GROUP, NAD_PLURAL, NAD_VERSION, LabHandle
from lab.state import LabState, state_dir

DEFAULT_IMAGE = "registry.invalid/pause:3.9"
DEFAULT_NAMESPACE = "default"
FAILURE_REASONS = ("FailedCreatePodSandBox", "FailedScheduling")
POLL = 0.1

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_LABEL = re.compile(rf"^{_LABEL}$")
DNS1123_SUBDOMAIN = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
NETWORK_REF = re.compile(r"^(?:(?P<ns>[^/@]+)/)?(?P<name>[^/@]+)(?:@(?P<ifname>[^/@]+))?$")
IFNAME = re.compile(r"^[^\s/:]{1,15}$")


class PodError(Exception):
    """What went wrong, as the one line the user sees (exit status 1)."""


@dataclass(frozen=True)
class Interface:
    """One interface of a pod, from Multus' network-status and the pod's namespace."""

    name: str  # inside the pod: eth0, net1...
    network: str  # k8s-pod-network, default/eth1-net
    mac: str
    ips: tuple[str, ...]
    default: bool
    device: str  # the node's NIC host-device moved in ("" for others)

    def cells(self, node: str) -> list[str]:
        """interface, network, where it came from, addresses, MAC: one row of `create`."""
        origin = f"{self.device} from {node}" if self.device else ""
        origin = origin or ("the cluster network" if self.default else "")
        return [self.name, self.network, origin, " ".join(self.ips), self.mac]


# --- the command line --------------------------------------------------------------------------


def add_parser(commands: Any, default_lab: str) -> None:
    """`pod` and its subcommands, under `python -m lab`."""
    pod = commands.add_parser("pod", help="create, delete and list pods on the lab")
    sub = pod.add_subparsers(dest="pod_command", required=True)

    def common(parser: argparse.ArgumentParser, namespace: bool = True) -> None:
        parser.add_argument("--lab", default=default_lab, help="the lab (default: %(default)s)")
        if namespace:
            parser.add_argument("-n", "--namespace", help=f"default: {DEFAULT_NAMESPACE}")

    create = sub.add_parser("create", help="create a pod and wait until it runs or fails")
    create.add_argument("name", nargs="?", help="the pod's name (default: the file's)")
    common(create)
    where = create.add_mutually_exclusive_group()
    where.add_argument("--node", help="bind the pod to this node (default: scheduled)")
    where.add_argument(
        "-f", "--from-file", type=Path, metavar="POD.yaml",
        help="a Pod manifest or the NAD builder's pod snippet (nodeSelector, affinity)",
    )  # fmt: skip
    create.add_argument(
        "--network", action="append", default=[], metavar="[NS/]NAD[@IFNAME]",
        help="attach a NetworkAttachmentDefinition (repeatable)",
    )  # fmt: skip
    create.add_argument("--timeout", type=float, default=60.0, help="seconds (default: 60)")

    delete = sub.add_parser("delete", help="delete a pod, wait until its NICs are back")
    delete.add_argument("name")
    common(delete)
    delete.add_argument("--timeout", type=float, default=60.0, help="seconds (default: 60)")

    listing = sub.add_parser("list", help="pods with their node, phase and networks")
    common(listing, namespace=False)
    scope = listing.add_mutually_exclusive_group()
    scope.add_argument("-n", "--namespace", help=f"default: {DEFAULT_NAMESPACE}")
    scope.add_argument("-A", "--all-namespaces", action="store_true")

    netns = sub.add_parser("netns", help="print the pod's network namespace (for `ip -n`)")
    netns.add_argument("name")
    common(netns)


def run(args: argparse.Namespace) -> int:
    """Run one `pod` subcommand; PodError for anything the user must be told."""
    handle = connect(args.lab)
    try:
        if args.pod_command == "create":
            return create(handle, args)
        if args.pod_command == "delete":
            return delete(handle, args)
        if args.pod_command == "list":
            return list_pods(handle, args)
        return show_netns(handle, args)
    except ApiException as exc:
        raise PodError(api_message(exc)) from exc
    except BrokenPipeError:
        raise  # stdout closed (`| head`): not the API's doing
    except ConfigException as exc:
        raise PodError(f"lab {args.lab}: its kubeconfig is unusable: {exc}") from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise PodError(
            f"lab {args.lab}: its API at {handle.api_url} does not answer: {exc}"
        ) from exc
    finally:
        handle.close()


def connect(lab: str) -> LabHandle:
    control.check_name(lab)
    try:
        found = control.status(lab)
        if found is not None and found["running"]:
            return LabHandle(LabState.load(state_dir(lab)))
    except (OSError, ValueError, KeyError) as exc:
        raise PodError(f"lab {lab}: its state in {state_dir(lab)} is unreadable: {exc}") from exc
    if found is None:
        raise PodError(f"no lab {lab} here: `python -m lab up --name {lab}` makes one")
    raise PodError(f"lab {lab} is not running: `python -m lab up --name {lab}` starts it")


def api_message(exc: ApiException) -> str:
    """The API server's own message of a refusal (its Status), else the HTTP reason."""
    try:
        message = json.loads(exc.body or "{}").get("message")
    except (ValueError, AttributeError):
        message = None
    return f"the API server refused: {message or exc.reason} (HTTP {exc.status})"


# --- create ------------------------------------------------------------------------------------


def create(handle: LabHandle, args: argparse.Namespace) -> int:
    manifest = read_manifest(args.from_file) if args.from_file else {}
    body = pod_body(manifest, args.name, args.namespace, args.node, args.network)
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    nodes = [node.name for node in handle.nodes]
    if args.node and args.node not in nodes:
        raise PodError(f"no node {args.node} in lab {handle.name} (it has {', '.join(nodes)})")
    try:
        handle.core.read_namespace(namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        raise PodError(f"no namespace {namespace} (kubectl create namespace {namespace})") from exc
    check_networks(handle, body)
    if handle.get_pod(namespace, name) is not None:
        raise PodError(
            f"pod {namespace}/{name} already exists: `python -m lab pod delete {name}"
            f"{namespace_flag(namespace)}` removes it"
        )
    created = handle._raw(handle.core.create_namespaced_pod, namespace, body)
    pod, failure = wait_started(handle, namespace, name, created["metadata"]["uid"], args.timeout)
    node = pod["spec"].get("nodeName", "")
    if failure is not None:
        raise PodError(failure_report(pod, failure))
    netns = topology.pod_netns(handle.name, pod["metadata"]["uid"])
    print(f"pod {namespace}/{name} is Running on {node} (netns {netns})")
    rows = [["INTERFACE", "NETWORK", "NIC", "IPS", "MAC"]]
    rows += [i.cells(node) for i in interfaces(handle, pod, nad_configs(handle))]
    print_table(rows, indent="  ")
    return 0


def read_manifest(path: Path) -> dict[str, Any]:
    try:
        documents = [d for d in yaml.safe_load_all(path.read_text()) if d is not None]
    except OSError as exc:
        raise PodError(f"{path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise PodError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from exc
    if not all(isinstance(d, dict) for d in documents):
        raise PodError(f"{path}: every document must be a mapping (a Pod)")
    # The builder's snippet has no kind: a document without one is taken as a pod.
    pods = [d for d in documents if d.get("kind", "Pod") == "Pod"]
    if len(pods) != 1:
        kinds = ", ".join(str(d.get("kind", "Pod")) for d in documents) or "nothing"
        raise PodError(f"{path}: needs exactly one Pod document, it has {kinds}")
    return pods[0]


def pod_body(
    manifest: dict[str, Any],
    name: str | None,
    namespace: str | None,
    node: str | None,
    networks: list[str],
) -> dict[str, Any]:
    """The Pod to create: the file's (if any), NAME, --namespace, --node and --network over it,
    and what a pause pod needs where the file says nothing (a container with an image)."""
    body = json.loads(json.dumps(manifest))  # a copy
    body["apiVersion"], body["kind"] = body.get("apiVersion", "v1"), "Pod"
    if not isinstance(body.get("metadata") or {}, dict) or not isinstance(
        body.get("spec") or {}, dict
    ):
        raise PodError("metadata and spec must be mappings")
    meta = body["metadata"] = dict(body.get("metadata") or {})
    spec = body["spec"] = dict(body.get("spec") or {})
    meta["name"] = name or meta.get("name") or ""
    meta["namespace"] = namespace or meta.get("namespace") or DEFAULT_NAMESPACE
    if not meta["name"]:
        raise PodError("name the pod: NAME, or metadata.name in the file")
    check_names(meta["name"], meta["namespace"])
    if node:
        spec["nodeName"] = node
    containers = spec.get("containers") or [{"name": "main"}]
    if not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers):
        raise PodError("spec.containers must be a list of containers")
    spec["containers"] = [{"image": DEFAULT_IMAGE, **c} for c in containers]
    if networks:
        annotations = meta["annotations"] = dict(meta.get("annotations") or {})
        annotations[multus.NETWORKS_ANNOTATION] = with_networks(
            annotations.get(multus.NETWORKS_ANNOTATION, ""), [parse_network(n) for n in networks]
        )
    return body


def check_names(name: str, namespace: str) -> None:
    if len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        raise PodError(
            f"pod name {name!r}: lower-case letters, digits, '-' and '.', starting and ending"
            " with a letter or digit, at most 253 characters"
        )
    check_namespace(namespace)


def check_namespace(namespace: str) -> None:
    if len(namespace) > 63 or not DNS1123_LABEL.match(namespace):
        raise PodError(
            f"namespace {namespace!r}: lower-case letters, digits and '-', starting and ending"
            " with a letter or digit, at most 63 characters"
        )


def parse_network(value: str) -> dict[str, str]:
    """`[NS/]NAD[@IFNAME]` as a network selection element."""
    match = NETWORK_REF.match(value.strip())
    if match is None:
        raise PodError(f"--network {value!r}: write NAD, NAMESPACE/NAD or NAD@IFNAME")
    nad, namespace, ifname = match["name"], match["ns"], match["ifname"]
    if len(nad) > 253 or not DNS1123_SUBDOMAIN.match(nad):
        raise PodError(f"--network {value!r}: {nad!r} is not a NetworkAttachmentDefinition name")
    if namespace is not None and (len(namespace) > 63 or not DNS1123_LABEL.match(namespace)):
        raise PodError(f"--network {value!r}: {namespace!r} is not a namespace name")
    if ifname is not None and not IFNAME.match(ifname):
        raise PodError(
            f"--network {value!r}: interface {ifname!r} must be 1-15 characters without"
            " spaces, '/' or ':'"
        )
    selection = {"name": nad}
    if namespace:
        selection["namespace"] = namespace
    if ifname:
        selection["interface"] = ifname
    return selection


def with_networks(existing: str, added: list[dict[str, str]]) -> str:
    """The networks annotation with `added` after what it held, in the form it was written."""
    existing = existing.strip()
    if existing.startswith("["):
        try:
            current = json.loads(existing)
        except ValueError as exc:
            raise PodError(f"the file's {multus.NETWORKS_ANNOTATION} is not JSON: {exc}") from exc
        return json.dumps([*current, *added])
    short = [
        (f"{s['namespace']}/" if "namespace" in s else "")
        + s["name"]
        + (f"@{s['interface']}" if "interface" in s else "")
        for s in added
    ]
    return ", ".join([existing, *short] if existing else short)


def check_networks(handle: LabHandle, body: dict[str, Any]) -> None:
    """Every NAD the pod asks for exists (Multus would fail the sandbox with NoNetworkFound)."""
    meta = body["metadata"]
    value = (meta.get("annotations") or {}).get(multus.NETWORKS_ANNOTATION, "")
    try:
        attachments = multus.parse_networks(value, meta["namespace"])
    except multus.AnnotationError as exc:
        raise PodError(f"{multus.NETWORKS_ANNOTATION}: {exc}") from exc
    for attachment in attachments:
        try:
            handle.custom.get_namespaced_custom_object(
                NAD_GROUP, NAD_VERSION, attachment.namespace, NAD_PLURAL, attachment.name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
            raise PodError(
                f"no NetworkAttachmentDefinition {attachment.qualified_name}"
                f" (kubectl get network-attachment-definitions -n {attachment.namespace})"
            ) from exc


def wait_started(
    handle: LabHandle, namespace: str, name: str, uid: str, timeout: float
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The pod once Running (None), or with the Event that says it failed."""
    deadline = time.monotonic() + timeout
    phase = "Pending"
    while True:
        pod = handle.get_pod(namespace, name)
        if pod is None or pod["metadata"]["uid"] != uid:
            raise PodError(f"pod {namespace}/{name} was deleted while it started")
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        if phase == "Running":
            return pod, None
        found = events(handle, namespace, name, uid)
        failures = [e for e in found if e["reason"] in FAILURE_REASONS]
        if failures:
            return pod, failures[-1]
        if time.monotonic() >= deadline:
            raise PodError(
                f"pod {namespace}/{name} is still {phase} after {timeout:g} s"
                f" (kubectl describe pod {name} -n {namespace})"
            )
        time.sleep(POLL)


def events(handle: LabHandle, namespace: str, name: str, uid: str) -> list[dict[str, Any]]:
    selector = f"involvedObject.kind=Pod,involvedObject.name={name},involvedObject.uid={uid}"
    found = handle._raw(handle.core.list_namespaced_event, namespace, field_selector=selector)
    return sorted(
        found.get("items", []),
        key=lambda e: e.get("lastTimestamp") or e.get("eventTime") or "",
    )


def failure_report(pod: dict[str, Any], failure: dict[str, Any]) -> str:
    """The reason first (network and plugin's words), then the whole Event, then what now."""
    meta, node = pod["metadata"], pod["spec"].get("nodeName", "")
    where = f" on {node}" if node else ""
    reason = short_reason(failure["message"])
    lines = [f"pod {meta['namespace']}/{meta['name']} failed{where}: {reason}"]
    if reason != failure["message"]:
        lines.append(f"  {failure['reason']}: {failure['message']}")
    why = "the kubelet retries it" if node else "Pending until a node matches"
    lines.append(
        f"  the pod stays ({why}); `python -m lab pod delete {meta['name']}"
        f"{namespace_flag(meta['namespace'])}` removes it"
    )
    return "\n".join(lines)


def short_reason(message: str) -> str:
    """From kubelet's wrapping of Multus' wrapping, the network and the plugin's own words:
    `error adding container to network "x": failed to move link file exists`."""
    match = re.search(r"failed \(add\): (?:\[[^\]]*\]: )?(.*)$", message, re.S)
    return match.group(1).strip() if match else message


def namespace_flag(namespace: str) -> str:
    return "" if namespace == DEFAULT_NAMESPACE else f" -n {namespace}"


# --- what a pod got ----------------------------------------------------------------------------


def nad_configs(handle: LabHandle) -> dict[str, dict[str, Any]]:
    """Every NAD's parsed CNI config by `namespace/name` (unparsable ones as {})."""
    listed = handle.custom.list_cluster_custom_object(NAD_GROUP, NAD_VERSION, NAD_PLURAL)
    configs = {}
    for nad in listed.get("items", []):
        try:
            config = json.loads((nad.get("spec") or {}).get("config") or "{}")
        except ValueError:
            config = {}
        key = f"{nad['metadata']['namespace']}/{nad['metadata']['name']}"
        configs[key] = config if isinstance(config, dict) else {}
    return configs


def network_status(pod: dict[str, Any]) -> list[dict[str, Any]]:
    annotations = pod["metadata"].get("annotations") or {}
    try:
        entries = json.loads(annotations.get(multus.NETWORK_STATUS_ANNOTATION) or "[]")
    except ValueError:
        return []
    return [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []


def interfaces(
    handle: LabHandle, pod: dict[str, Any], nads: dict[str, dict[str, Any]]
) -> list[Interface]:
    """The pod's interfaces as Multus reported them; for a NIC host-device moved in, its name
    on the node (the alias host-device gives it in the pod, else the NAD's `device`)."""
    netns = topology.pod_netns(handle.name, pod["metadata"]["uid"])
    aliases: dict[str, str] = {}
    if topology.netns_exists(netns):
        try:
            aliases = {
                link["ifname"]: link["ifalias"]
                for link in topology.links(netns)
                if link.get("ifalias")
            }
        except topology.TopologyError:
            pass  # not readable by this user: the NAD's device is the next best thing
    found = []
    for entry in network_status(pod):
        name, network = str(entry.get("interface", "")), str(entry.get("name", ""))
        config = nads.get(network, {})
        device = aliases.get(name, "")
        if not device and not entry.get("default") and config.get("type") == "host-device":
            device = str(config.get("device") or "")
        found.append(
            Interface(
                name=name,
                network=network,
                mac=str(entry.get("mac", "")),
                ips=tuple(str(ip) for ip in entry.get("ips") or ()),
                default=bool(entry.get("default")),
                device=device,
            )
        )
    return found


# --- delete ------------------------------------------------------------------------------------


def delete(handle: LabHandle, args: argparse.Namespace) -> int:
    namespace, name = args.namespace or DEFAULT_NAMESPACE, args.name
    check_names(name, namespace)
    pod = handle.get_pod(namespace, name)
    if pod is None:
        raise PodError(f"no pod {namespace}/{name}")
    uid, node = pod["metadata"]["uid"], pod["spec"].get("nodeName", "")
    moved = [i for i in interfaces(handle, pod, nad_configs(handle)) if i.device and i.mac]
    deadline = time.monotonic() + args.timeout
    try:
        handle.core.delete_namespaced_pod(name, namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
    while (current := handle.get_pod(namespace, name)) is not None and (
        current["metadata"]["uid"] == uid
    ):
        if time.monotonic() >= deadline:
            unknown = node and node not in {n.name for n in handle.nodes}
            why = f": no kubelet runs node {node}" if unknown else ""
            raise PodError(f"pod {namespace}/{name} is still there after {args.timeout:g} s{why}")
        time.sleep(POLL)
    on_lab_node = node in {n.name for n in handle.nodes}
    back = wait_nics_back(handle, node, moved, deadline) if moved and on_lab_node else []
    tail = "; " + ", ".join(f"{nic} is back on {node}" for nic in back) if back else ""
    print(f"pod {namespace}/{name} deleted{tail}")
    return 0


def wait_nics_back(
    handle: LabHandle, node: str, moved: list[Interface], deadline: float
) -> list[str]:
    """The node's names of the NICs that were in the pod, once each is back (found by MAC)."""
    netns = handle.node(node).netns
    macs = {i.mac.lower(): i for i in moved}
    while True:
        present = {str(link.get("address", "")).lower(): link for link in topology.links(netns)}
        if all(mac in present for mac in macs):
            return [present[mac]["ifname"] for mac in macs]
        if time.monotonic() >= deadline:
            missing = ", ".join(i.device for mac, i in macs.items() if mac not in present)
            raise PodError(f"the pod is gone, but {missing} is not back on {node}")
        time.sleep(POLL)


# --- list and netns ----------------------------------------------------------------------------


def list_pods(handle: LabHandle, args: argparse.Namespace) -> int:
    if args.all_namespaces:
        listed = handle._raw(handle.core.list_pod_for_all_namespaces)
    else:
        namespace = args.namespace or DEFAULT_NAMESPACE
        check_namespace(namespace)
        listed = handle._raw(handle.core.list_namespaced_pod, namespace)
    pods = sorted(
        listed.get("items", []),
        key=lambda p: (p["metadata"]["namespace"], p["metadata"]["name"]),
    )
    nads = nad_configs(handle) if pods else {}
    rows = [("NAMESPACE", "NAME", "NODE", "PHASE", "NETWORKS")]
    for pod in pods:
        meta, spec = pod["metadata"], pod.get("spec") or {}
        rows.append(
            (
                meta["namespace"],
                meta["name"],
                spec.get("nodeName") or "-",
                phase_of(handle, pod),
                networks_of(handle, pod, nads),
            )
        )
    if len(rows) == 1:
        where = "any namespace" if args.all_namespaces else f"namespace {namespace}"
        print(f"no pods in {where}")
        return 0
    print_table(rows)
    return 0


def print_table(rows: list[Any], indent: str = "") -> None:
    """Columns two spaces apart; empty cells as `-`; the last column not padded."""
    rows = [[cell or "-" for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        print(indent + "  ".join([*cells, row[-1]]))


def phase_of(handle: LabHandle, pod: dict[str, Any]) -> str:
    meta = pod["metadata"]
    if meta.get("deletionTimestamp"):
        return "Terminating"
    phase = (pod.get("status") or {}).get("phase") or "Pending"
    if phase == "Pending":
        found = events(handle, meta["namespace"], meta["name"], meta["uid"])
        failed = [e["reason"] for e in found if e["reason"] in FAILURE_REASONS]
        if failed:
            return f"Pending ({failed[-1]})"
    return phase


def networks_of(handle: LabHandle, pod: dict[str, Any], nads: dict[str, dict[str, Any]]) -> str:
    if (pod.get("spec") or {}).get("hostNetwork"):
        return "host network"
    attached = [i for i in interfaces(handle, pod, nads) if not i.default]
    if attached:
        return ", ".join(
            f"{i.name}={i.device} ({i.network})" if i.device else f"{i.name} ({i.network})"
            for i in attached
        )
    requested = (pod["metadata"].get("annotations") or {}).get(multus.NETWORKS_ANNOTATION, "")
    return f"{requested.strip()} (not attached)" if requested.strip() else "-"


def show_netns(handle: LabHandle, args: argparse.Namespace) -> int:
    namespace = args.namespace or DEFAULT_NAMESPACE
    check_names(args.name, namespace)
    pod = handle.get_pod(namespace, args.name)
    if pod is None:
        raise PodError(f"no pod {namespace}/{args.name}")
    if (pod.get("spec") or {}).get("hostNetwork"):
        raise PodError(f"pod {namespace}/{args.name} runs in its node's network namespace")
    netns = topology.pod_netns(handle.name, pod["metadata"]["uid"])
    if not topology.netns_exists(netns):
        phase = (pod.get("status") or {}).get("phase") or "Pending"
        raise PodError(f"pod {namespace}/{args.name} has no network namespace now ({phase})")
    print(netns)
    return 0
