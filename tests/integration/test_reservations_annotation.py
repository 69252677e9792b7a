"""The `nicportal.io/reservations` Node annotation, round trip through a real HTTP Kubernetes API
(KMock's emulator with the lab's fixes, on 127.0.0.1) and the official client in cluster.py."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator

import kmock
import pytest
import requests

from inventory.services import reservations
from lab.kube_api import LabKubernetesEmulator, node_object, write_kubeconfig
from tests.api.builders import in_days, make_free_interface, make_node, make_people

pytestmark = pytest.mark.django_db(transaction=True)


class ServedEmulator:
    """The emulator on a private event loop thread, so the portal's blocking client calls it
    exactly as it calls a real API server."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.emulator = LabKubernetesEmulator()
        self.server = kmock.Server(self.emulator)

    def __enter__(self) -> ServedEmulator:
        self.thread.start()
        self._run(self.emulator.__aenter__())
        self._run(self.server.__aenter__())
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._run(self.server.__aexit__(None, None, None))
        self._run(self.emulator.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    @property
    def url(self) -> str:
        return str(self.server.url).rstrip("/")

    def annotations(self, node: str) -> dict[str, str]:
        response = requests.get(f"{self.url}/api/v1/nodes/{node}", timeout=5)
        response.raise_for_status()
        return response.json()["metadata"].get("annotations") or {}


@pytest.fixture
def kube(settings, tmp_path) -> Iterator[ServedEmulator]:
    with ServedEmulator() as served:
        node = node_object("node-k", "10.0.0.9")
        node["metadata"]["annotations"] = {"other.example/keep": "yes"}
        served.emulator.objects["v1/nodes", None, "node-k"] = node
        kubeconfig = tmp_path / "kubeconfig"
        write_kubeconfig(kubeconfig, served.url, "annotation-test")
        settings.KUBECONFIG = str(kubeconfig)
        settings.KUBE_IN_CLUSTER = False
        settings.KUBE_CONTEXT = ""
        yield served


def test_reserve_extend_and_release_publish_the_node_annotation(kube):
    people = make_people()
    node = make_node("node-k")
    first = make_free_interface(node, "ens1f0")
    second = make_free_interface(node, "ens1f1")

    kept = reservations.reserve(
        interface_id=first.pk,
        team=people.team,
        user=people.owner,
        purpose="dpdk bench",
        expires_at=in_days(1),
    )
    published = json.loads(kube.annotations("node-k")[reservations.ANNOTATION_KEY])
    assert published == [
        {
            "interface": "ens1f0",
            "identity": first.identity,
            "team": "netlab",
            "until": published[0]["until"],
            "purpose": "dpdk bench",
            "by": "olivia",
        }
    ]
    assert published[0]["until"].endswith("Z")

    other = reservations.reserve(
        interface_id=second.pk,
        team=people.other_team,
        user=people.outsider,
        purpose="nvme-of",
        expires_at=in_days(2),
    )
    reservations.extend(reservation_id=kept.pk, user=people.mate, expires_at=in_days(5))
    published = json.loads(kube.annotations("node-k")[reservations.ANNOTATION_KEY])
    assert [(r["interface"], r["team"]) for r in published] == [
        ("ens1f0", "netlab"),
        ("ens1f1", "storage"),
    ]
    assert published[0]["until"] == reservations.node_reservations(node.pk)[0]["until"]

    reservations.release(reservation_id=kept.pk, user=people.owner)
    reservations.release(reservation_id=other.pk, user=people.outsider)
    annotations = kube.annotations("node-k")
    # No active reservation left: the key is gone, other people's annotations are untouched.
    assert reservations.ANNOTATION_KEY not in annotations
    assert annotations["other.example/keep"] == "yes"


def test_publish_can_resync_a_node_after_a_cluster_outage(kube, settings, tmp_path):
    people = make_people()
    node = make_node("node-k")
    nic = make_free_interface(node, "ens2f0")
    real_kubeconfig = settings.KUBECONFIG
    settings.KUBECONFIG = str(tmp_path / "unreachable")  # the cluster is "down" while reserving
    reservations.reserve(
        interface_id=nic.pk, team=people.team, user=people.owner, purpose="p", expires_at=in_days(1)
    )
    assert reservations.ANNOTATION_KEY not in kube.annotations("node-k")

    settings.KUBECONFIG = real_kubeconfig
    assert reservations.publish_node_reservations(node_id=node.pk) is True
    published = json.loads(kube.annotations("node-k")[reservations.ANNOTATION_KEY])
    assert [r["interface"] for r in published] == ["ens2f0"]
