"""Fleet-wide reviews' device classes are remembered until PostgreSQL notifies a commit that
changes what they read (read/admission.py device_classes, read/changes.py, migration 0015):
with committed writes and the real listener thread, a repeated review costs no query and
decides the same; a reservation, an interface update, a node leaving the cluster or a COPY
committed by anyone changes the next review's answer; without a listening listener or inside a
transaction every review reads the database. On SQLite the migration is a no-op."""

from __future__ import annotations

import json
import os
import re
import socket
import statistics
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext, override_settings
from django.utils import timezone

from inventory.choices import OwnershipState
from inventory.models import Interface, NetworkAttachment, Node, Reservation, TeamNamespace
from inventory.read import admission as admission_facts
from inventory.read import changes, classes
from inventory.rules.admission.review import AdmissionRequest, Decision, parse_review
from inventory.services import admission, reservations
from inventory.sync.first_sight import FirstSnapshot, apply_first_snapshots
from tests.factories import make_cluster, make_interface, make_node, make_team, make_user
from tests.integration.test_admission_webhook import NAD, POD, nad_object, pod_object, review
from tests.integration.test_sync_snapshots import link, snapshot

pytestmark = pytest.mark.django_db(transaction=True)

CNI = {"host_device": {"version": "1.1.1", "supported_versions": ["0.3.1", "0.4.0", "1.0.0"]}}
NODES = 6
TRIGGER_TABLES = {
    Interface._meta.db_table,
    Node._meta.db_table,
    Reservation._meta.db_table,
    Group._meta.db_table,
}


def postgres_only() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("needs PostgreSQL (set DATABASE_URL): LISTEN/NOTIFY and grouped classes")


@pytest.fixture
def fleet(settings):
    """NODES nodes with a free eth1 each, and node-new, known to the cluster but not yet
    swept; teams platform and ml (namespace ml); the NAD default/free on eth1. The listener
    runs and the index is loaded."""
    postgres_only()
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = "3.9"
    settings.WEBHOOK_MODE = "enforce"
    settings.WEBHOOK_INDEX_MAX_AGE = 3600
    settings.WEBHOOK_CLASS_CACHE = True
    cluster = make_cluster(name="prod")
    rows = {}
    for i in range(NODES):
        node = make_node(cluster, name=f"node-{i}", cni=CNI)
        rows[node.name] = make_interface(
            node, name="eth1", kind="physical", driver="ixgbe", pci_address=f"0000:3b:00.{i}"
        )
    new = make_node(cluster, name="node-new", cni=CNI)
    platform, ml = make_team("platform"), make_team("ml")
    TeamNamespace.objects.create(team=ml, pattern="ml")
    NetworkAttachment.objects.create(
        cluster=cluster,
        namespace="default",
        name="free",
        config=json.dumps(
            {"cniVersion": "0.3.1", "name": "free", "type": "host-device", "device": "eth1"}
        ),
    )
    admission_facts.INDEX.background = False
    admission_facts.INDEX.clear()
    assert "node-new" in admission_facts.INDEX.get().nodes
    assert changes.LISTENER.wait_healthy(5), "the change listener did not start"
    yield {"cluster": cluster, "rows": rows, "new": new, "platform": platform, "ml": ml}
    changes.LISTENER.stop()
    admission_facts.INDEX.clear()
    admission_facts.INDEX.background = True


def pod_body(namespace: str = "ml") -> bytes:
    """The review of a pod that may run on any node, asking for default/free."""
    return json.dumps(review(POD, pod_object("p", "default/free"), namespace=namespace)).encode()


def pod_request(namespace: str = "ml") -> AdmissionRequest:
    return parse_review(pod_body(namespace))


def nad_request() -> AdmissionRequest:
    """A NAD on eth1 without a node list."""
    config = {"cniVersion": "0.3.1", "name": "n", "type": "host-device", "device": "eth1"}
    return parse_review(json.dumps(review(NAD, nad_object("n", json.dumps(config)))).encode())


def read_classes(sql: str) -> bool:
    """Whether a query reads device classes (the grouped query, or their rows in full or
    patched)."""
    return "-> 'host_device'" in sql


def decide(request: AdmissionRequest) -> tuple[Decision, int, bool]:
    """(decision, queries, whether device classes were read from the database)."""
    with CaptureQueriesContext(connection) as queries:
        decision = admission.decide_request(request)
    grouped = any(read_classes(q["sql"]) for q in queries)
    return decision, len(queries), grouped


def uncached(request: AdmissionRequest) -> Decision:
    with override_settings(WEBHOOK_CLASS_CACHE=False):
        return admission.decide_request(request)


def assert_cached(request: AdmissionRequest) -> Decision:
    """Review twice: the second answer is the first, from memory (no query at all)."""
    first, _, _ = decide(request)
    second, queries, _ = decide(request)
    assert queries == 0
    assert second == first
    return first


def after_commit(change: Callable[[], object], request: AdmissionRequest) -> Decision:
    """Commit `change`, wait (at most 5 s) for its notification, review again: read from the
    database (in full or patched), and the same as a review without the cache."""
    since = changes.LISTENER.generation
    change()
    assert changes.LISTENER.wait_for(since, 5), "no notification within 5 s"
    decision, _, grouped = decide(request)
    assert grouped, "answered from the stale entry"
    assert decision == uncached(request)
    return decision


def codes(decision: Decision) -> set[str]:
    return set(decision.codes)


# --- the cache answers, and changes reach it -------------------------------------------------


def test_a_repeated_fleet_wide_review_is_answered_from_memory(fleet):
    nad, queries, grouped = decide(nad_request())
    assert grouped and queries == 1
    # A fleet-wide pod on the same device reads the same classes: remembered already.
    pod, queries, _ = decide(pod_request())
    assert queries == 0
    assert assert_cached(nad_request()) == nad == uncached(nad_request())
    assert assert_cached(pod_request()) == pod == uncached(pod_request())
    assert nad.allowed and pod.allowed and "node-new" in pod.warnings[0]


def test_the_class_cache_is_counted_in_the_metrics(fleet):
    before = admission.read_counters()
    request_body = pod_body()
    for _ in range(3):
        status, _answer = admission.review(request_body)
        assert status == 200
    with transaction.atomic():
        admission.review(request_body)
    after = admission.read_counters()

    def moved(result: str) -> float:
        return after.get(f"class_cache|{result}", 0) - before.get(f"class_cache|{result}", 0)

    assert (moved("miss"), moved("hit"), moved("bypass")) == (1, 2, 1)


def test_a_committed_reservation_is_seen_by_the_next_review(fleet):
    request = pod_request()
    before = assert_cached(request)
    assert before.allowed
    user = make_user(teams=[fleet["platform"]])

    def reserve():
        return reservations.reserve(
            interface_id=fleet["rows"]["node-3"].pk,
            team=fleet["platform"],
            user=user,
            purpose="benchmarks",
            expires_at=timezone.now() + timedelta(days=1),
        )

    after = after_commit(reserve, request)
    assert not after.allowed and "DEVICE_RESERVED" in codes(after)
    assert "platform" in after.message() and "node-3" in after.message()
    assert assert_cached(request) == after  # remembered again until the next commit


def test_a_committed_interface_update_is_seen_by_the_next_review(fleet):
    request = pod_request()
    assert assert_cached(request).allowed
    nad_before = assert_cached(nad_request())

    def into_pod():
        Interface.objects.filter(pk=fleet["rows"]["node-1"].pk).update(
            state=OwnershipState.POD,
            holder="pod default/web-0",
            reason="moved into pod default/web-0 by host-device",
        )

    after = after_commit(into_pod, request)
    assert not after.allowed and "node-1" in after.message()
    nad_after = decide(nad_request())[0]
    assert nad_after != nad_before and nad_after == uncached(nad_request())


def test_a_node_leaving_the_cluster_is_seen_by_the_next_review(fleet):
    row = fleet["rows"]["node-2"]
    since = changes.LISTENER.generation
    with transaction.atomic():  # one commit, one notification
        Interface.objects.filter(pk=row.pk).update(
            state=OwnershipState.RESERVED, holder="team platform"
        )
        Reservation.objects.create(
            interface=row,
            team=fleet["platform"],
            created_by=make_user(teams=[fleet["platform"]]),
            purpose="x",
            expires_at=timezone.now() + timedelta(days=1),
        )
    assert changes.LISTENER.wait_for(since, 5)
    request = pod_request()
    before = assert_cached(request)
    assert not before.allowed and "node-2" in before.message()

    after = after_commit(
        lambda: Node.objects.filter(name="node-2").update(in_cluster=False), request
    )
    assert "DEVICE_RESERVED" not in codes(after)
    assert after != before


def test_a_copy_of_first_snapshots_is_seen_by_the_next_review(fleet):
    """sync/first_sight.py writes a node's first interfaces with COPY: the INSERT statement
    trigger fires for it too."""
    request = pod_request()
    before = assert_cached(request)
    address = {"family": 4, "address": "10.0.0.9", "prefixlen": 24, "scope": "universe"}
    snap = snapshot(
        "node-new",
        link("lo", "00:00:00:00:00:00", ifindex=1, kind="loopback", driver=None),
        link(
            "eth1",
            "02:00:00:00:01:01",
            pci_address="0000:00:03.0",
            addresses=[address],
            default_route_v4=True,
        ),
    )
    node = Node.objects.get(pk=fleet["new"].pk)

    def first_sight():
        apply_first_snapshots([FirstSnapshot(node, snap, '"e1"')], now=datetime.now(UTC))

    after = after_commit(first_sight, request)
    assert Interface.objects.filter(node=node, name="eth1", state=OwnershipState.SYSTEM).exists()
    assert after != before and "node-new" in after.message()


# --- when the cache is not used --------------------------------------------------------------


def test_without_a_listening_listener_every_review_reads_the_database(fleet, monkeypatch):
    request = pod_request()
    assert_cached(request)
    changes.LISTENER.stop()
    # Nothing listens at port 1: the listener keeps failing and retrying, never healthy.
    real = changes.connection_params
    monkeypatch.setattr(changes, "connection_params", lambda: {**real(), "port": 1})
    for _ in range(3):
        decision, _, grouped = decide(request)
        assert grouped
        assert not changes.LISTENER.healthy
    monkeypatch.setattr(changes, "connection_params", real)
    changes.LISTENER.stop()
    assert changes.LISTENER.wait_healthy(5)
    decide(request)
    assert decide(request)[1] == 0  # back to memory once it listens again


def test_a_lost_listener_connection_reconnects_and_drops_what_it_knew(fleet):
    """The listener's server process ends (a restart, a failover): it reconnects with a new
    generation, so the answers remembered before are read again."""
    request = pod_request()
    assert_cached(request)
    since, backend = changes.LISTENER.generation, changes.LISTENER.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    deadline = time.monotonic() + 10
    while changes.LISTENER.backend_pid == backend or not changes.LISTENER.healthy:
        assert time.monotonic() < deadline, "the listener did not reconnect"
        time.sleep(0.05)
    assert changes.LISTENER.generation > since
    assert decide(request)[2]  # read again
    assert decide(request)[1] == 0


class Relay:
    """A TCP relay to PostgreSQL that can hold every byte (a network that hangs without
    closing anything), in threads of this process."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.held = threading.Event()
        self.sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self.sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(source, target), daemon=True).start()

    def _pipe(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self.held.is_set():
                    time.sleep(0.01)
                target.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.held.clear()
        for sock in (self.server, *self.sockets):
            sock.close()


def test_a_listener_whose_connection_hangs_is_not_trusted(fleet, monkeypatch):
    """The network to PostgreSQL hangs (nothing closed, nothing answered): within
    SILENT_AFTER the listener is unhealthy and reviews read the database; when the server
    answers again, the generation moves on (notifications may have queued meanwhile)."""
    real = changes.connection_params
    params = real()
    relay = Relay(params.get("host") or "127.0.0.1", int(params.get("port") or 5432))
    monkeypatch.setattr(
        changes, "connection_params", lambda: {**real(), "host": "127.0.0.1", "port": relay.port}
    )
    try:
        changes.LISTENER.stop()
        assert changes.LISTENER.wait_healthy(5)
        request = pod_request()
        assert_cached(request)
        before = changes.LISTENER.generation
        relay.held.set()
        deadline = time.monotonic() + 10
        while changes.LISTENER.healthy:
            assert time.monotonic() < deadline, "a hung listener is still trusted"
            time.sleep(0.05)
        for _ in range(2):
            assert decide(request)[2]  # read, not remembered
        relay.held.clear()
        assert changes.LISTENER.wait_healthy(10)
        assert changes.LISTENER.generation > before
        assert decide(request)[2]
        assert decide(request)[1] == 0
    finally:
        changes.LISTENER.stop()
        relay.close()


def test_a_forked_worker_listens_on_its_own(fleet):
    """gunicorn forks its workers: a child inherits the parent's listener state but not its
    thread, so it is not healthy (nothing it remembered is served) until it listens itself."""
    parent = changes.LISTENER.generation
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # the child: report and leave without running anything of pytest's
        try:
            report = {
                "healthy_at_fork": changes.LISTENER.healthy,
                "generation_moved": changes.LISTENER.generation > parent,
                "listens": changes.LISTENER.wait_healthy(5),
                "own_backend": changes.LISTENER.backend_pid,
            }
            changes.LISTENER.stop()
            os.write(write, json.dumps(report).encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = json.loads(pipe.read())
    os.waitpid(child, 0)
    assert report["healthy_at_fork"] is False and report["generation_moved"]
    assert report["listens"] and report["own_backend"] not in (0, changes.LISTENER.backend_pid)
    assert changes.LISTENER.healthy  # the parent's own thread is untouched


def test_inside_a_transaction_every_review_reads_the_database(fleet):
    request = pod_request()
    assert_cached(request)
    with transaction.atomic():
        # Its own uncommitted reservation is what this transaction must see.
        row = fleet["rows"]["node-4"]
        Interface.objects.filter(pk=row.pk).update(
            state=OwnershipState.RESERVED, holder="team platform"
        )
        Reservation.objects.create(
            interface=row,
            team=fleet["platform"],
            created_by=make_user(teams=[fleet["platform"]]),
            purpose="x",
            expires_at=timezone.now() + timedelta(days=1),
        )
        for _ in range(2):
            decision, _, grouped = decide(request)
            assert grouped and not decision.allowed and "node-4" in decision.message()
        transaction.set_rollback(True)
    assert decide(request)[0].allowed


def test_the_setting_turns_the_cache_off(fleet, settings):
    settings.WEBHOOK_CLASS_CACHE = False
    request = pod_request()
    for _ in range(2):
        assert decide(request)[2]


# --- how fresh --------------------------------------------------------------------------------


def test_how_long_a_commit_takes_to_reach_the_listener(fleet, capsys):
    """How long after a commit the generation moves, measured (printed, not asserted: speed
    is bench/'s): from the start of a committing UPDATE, and from its return (0 when it had
    moved already)."""
    row = fleet["rows"]["node-5"]
    from_start, from_return = [], []
    for i in range(50):
        since = changes.LISTENER.generation
        started = time.perf_counter()
        Interface.objects.filter(pk=row.pk).update(reason=f"change {i}")  # autocommit
        returned = time.perf_counter()
        moved_already = changes.LISTENER.generation > since
        assert changes.LISTENER.wait_for(since, 5)
        moved = time.perf_counter()
        from_start.append((moved - started) * 1000)
        from_return.append(0.0 if moved_already else (moved - returned) * 1000)
    with capsys.disabled():
        print(
            f"\ncommit to generation moved, {len(from_start)} commits (ms): from the UPDATE's "
            f"start median {statistics.median(from_start):.3f} max {max(from_start):.3f}; "
            f"from its return median {statistics.median(from_return):.3f} "
            f"max {max(from_return):.3f} ({from_return.count(0.0)} moved before it returned)"
        )
    assert len(from_start) == 50


# --- the migration -----------------------------------------------------------------------------


def triggers() -> dict[str, set[str]]:
    """Table -> the names of its nicportal_inventory_* triggers."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, array_agg(t.tgname) FROM pg_trigger t"
            " JOIN pg_class c ON c.oid = t.tgrelid"
            " WHERE t.tgname LIKE 'nicportal_inventory_%%' GROUP BY c.relname"
        )
        return {table: set(names) for table, names in cursor.fetchall()}


NAMED = {f"nicportal_inventory_{event}" for event in ("insert", "update", "delete", "changed")}
EVERYTHING = {
    Interface._meta.db_table: NAMED,
    Node._meta.db_table: NAMED,
    Reservation._meta.db_table: NAMED,
    Group._meta.db_table: {"nicportal_inventory_changed"},
}


def test_the_migration_puts_triggers_on_every_table_the_classes_read():
    postgres_only()
    assert triggers() == EVERYTHING
    # The node trigger names a node whose update changed any node column the classes read.
    with connection.cursor() as cursor:
        cursor.execute("SELECT prosrc FROM pg_proc WHERE proname = 'nicportal_inventory_node'")
        (source,) = cursor.fetchone()
    read = set(re.findall(r"\bn\.(\w+)", classes._CLASSES + classes._ROWS))
    assert read and all(f"o.{c} IS DISTINCT FROM n.{c}" in source for c in read)


def test_the_migration_is_reversible_and_a_no_op_on_sqlite():
    call_command("migrate", "inventory", "0016", verbosity=0)
    try:
        if connection.vendor == "postgresql":  # 0015's: one trigger per table, "everything"
            assert triggers() == {t: {"nicportal_inventory_changed"} for t in TRIGGER_TABLES}
        call_command("migrate", "inventory", "0014", verbosity=0)
        if connection.vendor == "postgresql":
            assert triggers() == {}
    finally:
        call_command("migrate", "inventory", verbosity=0)
    if connection.vendor == "postgresql":
        assert triggers() == EVERYTHING
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            assert not [n for (n,) in cursor.fetchall() if n.startswith("nicportal")]
        assert (
            admission_facts.device_classes(
                admission_facts.load_index(),
                selector=admission_facts.DeviceSelector("device", "eth1"),
            )
            is None
        )
