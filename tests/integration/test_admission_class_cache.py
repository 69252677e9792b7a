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


def end_listener_connection() -> int:
    """End the listener's server process (a restart, a failover) and wait until it has
    reconnected; the generation before."""
    since, backend = changes.LISTENER.generation, changes.LISTENER.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [backend])
    deadline = time.monotonic() + 10
    while changes.LISTENER.backend_pid == backend or not changes.LISTENER.healthy:
        assert time.monotonic() < deadline, "the listener did not reconnect"
        time.sleep(0.05)
    return since


def test_a_lost_listener_connection_reconnects_and_drops_what_it_knew(fleet):
    """The listener's server process ends (a restart, a failover): it reconnects with a new
    generation, so the answers remembered before are read again."""
    request = pod_request()
    assert_cached(request)
    since = end_listener_connection()
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
    call_command("migrate", "inventory", "0017_lean_write_indexes", verbosity=0)
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


# --- patched answers equal a full read ----------------------------------------------------------

ETH1 = admission_facts.DeviceSelector("device", "eth1")
ETH2 = admission_facts.DeviceSelector("device", "eth2")


def sentinel(fleet) -> Interface:
    """An interface no selector of these tests picks: its writes mark the notification queue."""
    found = fleet.get("sentinel")
    if found is None:
        since = changes.LISTENER.generation
        found = fleet["sentinel"] = make_interface(
            Node.objects.get(name="node-0"), name="sentinel", mac="02:ff:ff:ff:ff:ff"
        )
        told_of(found, since)
    return found


def told_of(row: Interface, since: int) -> int:
    """Wait (at most 5 s) for the first notification after generation `since` that names
    `row`; its generation."""
    deadline = time.monotonic() + 5
    while True:
        now = changes.LISTENER.generation
        for generation in range(since, now):
            told = changes.LISTENER.changed_between(generation, generation + 1)
            if told is not None and row.pk in told.interfaces:
                return generation + 1
        assert time.monotonic() < deadline, "the sentinel's notification did not arrive"
        changes.LISTENER.wait_for(now, 0.05)


def settle(fleet) -> tuple[int, int]:
    """Commit a write of the sentinel interface and wait until the listener has read its
    notification: PostgreSQL delivers notifications in commit order, so every commit before it
    has been told too. Returns the generations it took: (before, the sentinel's)."""
    row = sentinel(fleet)
    since = changes.LISTENER.generation
    Interface.objects.filter(pk=row.pk).update(reason=f"mark {time.monotonic_ns()}")
    return since, told_of(row, since)


Key = tuple[admission_facts.DeviceSelector, tuple[str, ...] | None]


def answer(key: Key) -> tuple[list | None, list[str]]:
    """(device_classes() through the cache, how it was answered)."""
    outcomes: list[str] = []
    selector, nodes = key
    found = classes.device_classes(
        admission_facts.INDEX.get(), selector=selector, nodes=nodes, count=outcomes.append
    )
    return found, outcomes


def full_read(key: Key) -> list | None:
    """The same classes from the grouped query, nothing remembered."""
    selector, nodes = key
    return classes.read_classes(admission_facts.INDEX.get(), selector, nodes)


def assert_as_read(keys: list[Key], how: str) -> None:
    for key in keys:
        found, outcomes = answer(key)
        assert outcomes == [how], key
        assert found == full_read(key), key
        assert answer(key) == (found, ["hit"]), key  # remembered as patched


def interface(fleet, node: str) -> Interface:
    return Interface.objects.get(pk=fleet["rows"][node].pk)


def reserve_for(fleet, node: str) -> Reservation:
    user = make_user(teams=[fleet["platform"]])
    return reservations.reserve(
        interface_id=fleet["rows"][node].pk,
        team=fleet["platform"],
        user=user,
        purpose="benchmarks",
        expires_at=timezone.now() + timedelta(days=1),
    )


def release(fleet, node: str) -> None:
    held = Reservation.objects.get(interface=fleet["rows"][node], released_at__isnull=True)
    reservations.release(reservation_id=held.pk, user=held.created_by)


def into_pod(fleet, node: str) -> None:
    Interface.objects.filter(pk=fleet["rows"][node].pk).update(
        state=OwnershipState.POD, holder="pod default/web-0", reason="moved into pod default/web-0"
    )


def rename(fleet, node: str, name: str) -> None:
    Interface.objects.filter(pk=fleet["rows"][node].pk).update(name=name)


def first_nic_of_new(fleet) -> None:
    make_interface(fleet["new"], name="eth1", kind="physical", driver="ixgbe")


def many_interfaces(fleet) -> None:
    """More interfaces in one statement than a notification names: "everything"."""
    node = Node.objects.get(name="node-0")
    Interface.objects.bulk_create(
        Interface(
            node=node,
            name=f"x{i}",
            mac=(mac := f"02:aa:00:00:{i >> 8:02x}:{i & 0xFF:02x}"),
            identity=mac,
        )
        for i in range(400)
    )


SUBSET = ("node-1", "node-2", "node-3")
KEYS: list[Key] = [(ETH1, None), (ETH2, None), (ETH1, SUBSET)]
# (change, how the next review answers: patched or read in full)
CHANGES: dict[str, tuple[Callable[[dict], object], str]] = {
    "state": (lambda f: into_pod(f, "node-1"), "patch"),
    "reservation made": (lambda f: reserve_for(f, "node-2"), "patch"),
    "rename between selector values": (lambda f: rename(f, "node-3", "eth2"), "patch"),
    "interface deleted": (
        lambda f: Interface.objects.filter(pk=f["rows"]["node-4"].pk).delete(),
        "patch",
    ),
    "first interface of a new node": (first_nic_of_new, "patch"),
    "node cni": (
        lambda f: Node.objects.filter(name="node-2").update(
            cni={"host_device": {"version": "1.0.0", "supported_versions": ["1.0.0"]}}
        ),
        "patch",
    ),
    "node leaves the cluster": (
        lambda f: Node.objects.filter(name="node-5").update(in_cluster=False),
        "patch",
    ),
    "team renamed": (lambda f: Group.objects.filter(name="platform").update(name="plat"), "miss"),
    "a big change": (many_interfaces, "miss"),
}


@pytest.mark.parametrize("kind", list(CHANGES))
def test_a_patched_answer_is_a_full_read_after_each_kind_of_change(fleet, kind):
    change, how = CHANGES[kind]
    if kind == "team renamed":
        reserve_for(fleet, "node-1")  # a reservation whose team is renamed
    settle(fleet)
    for key in KEYS:
        assert answer(key)[1] == ["miss"]
    before = {key: full_read(key) for key in KEYS}
    change(fleet)
    settle(fleet)
    assert_as_read(KEYS, how)
    if kind not in ("a big change",):
        assert any(full_read(key) != before[key] for key in KEYS), "the change changed nothing"


def test_a_released_reservation_and_a_rename_back_are_patched(fleet):
    reserve_for(fleet, "node-2")
    rename(fleet, "node-3", "eth2")
    settle(fleet)
    for key in KEYS:
        answer(key)
    release(fleet, "node-2")
    settle(fleet)
    assert_as_read(KEYS, "patch")
    rename(fleet, "node-3", "eth1")
    settle(fleet)
    assert_as_read(KEYS, "patch")
    assert full_read((ETH2, None)) == []


def test_rows_read_apart_group_as_rows_read_together(fleet):
    """Rows of one class read at different times may hold equal class keys that are distinct
    objects (the intern table was emptied meanwhile): grouped into one class all the same."""
    settle(fleet)
    for key in KEYS:
        answer(key)
    classes._KEYS.clear()
    for node in ("node-1", "node-4"):
        Interface.objects.filter(pk=fleet["rows"][node].pk).update(reason="still free")
    settle(fleet)
    assert_as_read(KEYS, "patch")
    found, _ = answer((ETH1, None))
    assert found is not None and len(found) == 1 and len(found[0].nodes) == NODES


def test_a_rebuilt_index_groups_the_remembered_rows_again(fleet):
    """The index is rebuilt every poll interval: the rows stay (they are the cluster's, not the
    index's), grouped again under the new index without a query, then patched as before."""
    settle(fleet)
    for key in KEYS:
        answer(key)
    Node.objects.filter(name="node-2").update(labels={"zone": "b"})  # read by the index only
    admission_facts.INDEX.reload()
    for key in KEYS:
        with CaptureQueriesContext(connection) as queries:
            found, outcomes = answer(key)
        assert outcomes == ["patch"] and len(queries) == 0
        assert found == full_read(key)
    into_pod(fleet, "node-2")
    settle(fleet)
    assert_as_read(KEYS, "patch")


def test_an_update_of_other_node_columns_sends_nothing(fleet):
    """Agents write their nodes' contact times all day: that notifies nobody."""
    for key in KEYS:
        answer(key)
    settle(fleet)
    for key in KEYS:
        answer(key)
    Node.objects.filter(name="node-1").update(last_contact_at=timezone.now(), agent_error="x")
    since, told = settle(fleet)
    assert told == since + 1  # the sentinel's notification, nothing before it
    for key in KEYS:
        assert answer(key)[1] == ["patch"]  # the sentinel's row read: not one of these


def test_a_patch_after_a_listener_reconnect_reads_in_full(fleet):
    for key in KEYS:
        answer(key)
    into_pod(fleet, "node-1")
    since = end_listener_connection()
    settle(fleet)
    assert changes.LISTENER.changed_between(since, changes.LISTENER.generation) is None
    assert_as_read(KEYS, "miss")


def test_the_trigger_payloads_name_the_rows(fleet):
    """What each write sends (read/changes.py parses it)."""
    row = fleet["rows"]["node-1"]
    node = Node.objects.get(name="node-2")
    settle(fleet)

    def told(change: Callable[[], object]) -> changes.Changed | None:
        since = changes.LISTENER.generation
        change()
        assert changes.LISTENER.wait_for(since, 5)
        return changes.LISTENER.changed_between(since, since + 1)

    assert told(lambda: into_pod(fleet, "node-1")) == changes.Changed(
        frozenset({row.pk}), frozenset()
    )
    held = reserve_for(fleet, "node-3")
    settle(fleet)  # its notification told before the next write's
    assert told(lambda: Reservation.objects.filter(pk=held.pk).update(purpose="y")) == (
        changes.Changed(frozenset({fleet["rows"]["node-3"].pk}), frozenset())
    )
    assert told(lambda: Node.objects.filter(pk=node.pk).update(name="node-2b")) == (
        changes.Changed(frozenset(), frozenset({node.pk}))
    )
    assert told(lambda: many_interfaces(fleet)) is None
    assert told(lambda: Group.objects.filter(name="ml").update(name="ml2")) is None
    assert changes.parse("i:1,x") is None and changes.parse("q:1") is None


# --- randomized: any sequence of commits, patched, is what a full read says ---------------------

STATES = [
    (OwnershipState.FREE, "", "physical link on the host, used by nothing"),
    (OwnershipState.POD, "pod default/a", "moved into pod default/a"),
    (OwnershipState.SYSTEM, "", "carries the node's default route"),
    (OwnershipState.SYSTEM, "", "bond member"),
    (OwnershipState.RESERVED, "team platform", "reserved"),
]
CNIS = [CNI, {"host_device": {"version": "1.0.0", "supported_versions": ["1.0.0"]}}, {}]


def step(fleet, operation: tuple) -> None:
    """One committed write of the randomized sequences."""
    kind, node, value = operation
    row = fleet["rows"][node]
    if kind == "state":
        state, holder, reason = STATES[value]
        Interface.objects.filter(pk=row.pk).update(state=state, holder=holder, reason=reason)
    elif kind == "rename":
        Interface.objects.filter(pk=row.pk).update(name=("eth1", "eth2", "eth3")[value % 3])
    elif kind == "reserve":
        held = Reservation.objects.filter(interface=row, released_at__isnull=True)
        if held.exists():
            held.update(released_at=timezone.now())
        else:
            Reservation.objects.create(
                interface=row,
                team=(fleet["platform"], fleet["ml"])[value % 2],
                created_by=make_user(),
                purpose="x",
                expires_at=timezone.now() + timedelta(days=1),
            )
    elif kind == "cni":
        Node.objects.filter(name=node).update(cni=CNIS[value % len(CNIS)])
    elif kind == "cluster":
        Node.objects.filter(name=node).update(in_cluster=bool(value % 2))
    elif kind == "second":  # a node's second interface takes a selected name, or leaves it
        Interface.objects.filter(pk=fleet["second"][node].pk).update(
            name=("eth9", "eth1", "eth2")[value % 3]
        )
    elif kind == "sriov":
        Interface.objects.filter(pk=row.pk).update(sriov_num_vfs=value, has_netdev=value != 3)


def test_any_sequence_of_commits_patched_is_a_full_read(fleet):
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    # A node made last whose name sorts among the first: node ids and names in different
    # orders (classes are ordered by their first member's node id, members by node name).
    late = make_node(fleet["cluster"], name="node-00", cni=CNI)
    fleet["rows"][late.name] = make_interface(late, name="eth1", kind="physical", driver="ixgbe")
    # A second interface on each node: named like the first, the node has two (judged node by
    # node: device_classes() is None).
    fleet["second"] = {
        node.name: make_interface(node, name="eth9", kind="physical", driver="ixgbe")
        for node in Node.objects.filter(name__in=list(fleet["rows"]))
    }
    admission_facts.INDEX.reload()
    nodes = st.sampled_from([*(f"node-{i}" for i in range(NODES)), late.name])
    operation = st.tuples(
        st.sampled_from(["state", "rename", "reserve", "cni", "cluster", "sriov", "second"]),
        nodes,
        st.integers(0, 4),
    )
    keys: list[Key] = [*KEYS, (admission_facts.DeviceSelector("device", "eth3"), None)]
    outcomes: list[str] = []
    answers: list[list | None] = []

    @settings(
        max_examples=25,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        database=None,
    )
    @given(st.lists(st.lists(operation, min_size=1, max_size=3), min_size=1, max_size=6))
    def sequences(commits: list[list[tuple]]) -> None:
        for key in keys:
            answer(key)
        for writes in commits:
            with transaction.atomic():  # a commit of one to three writes
                for write in writes:
                    step(fleet, write)
            settle(fleet)
            for key in keys:
                found, how = answer(key)
                outcomes.extend(how)
                answers.append(found)
                assert found == full_read(key), (key, commits)

    sequences()
    assert "patch" in outcomes
    assert None in answers, "no sequence gave a node two matching interfaces"
