"""Denial records written off the review's response path (NICPORTAL_WEBHOOK_RECORD_ASYNC, on in
the webhook server): the review only queues the record, the process's writer thread writes it
on its own connection. Against the real database, outside any test transaction (the writer's
connection sees only committed rows): every record lands after flush() with the right count,
a full queue drops and counts, the writer outlives a killed connection and a failing table, a
forked child starts its own writer, and the review's own queries write nothing."""

from __future__ import annotations

import logging
import os
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from prometheus_client.parser import text_string_to_metric_families

from inventory.choices import OwnershipState
from inventory.models import AdmissionRecord, NetworkAttachment, TeamNamespace
from inventory.read import admission as admission_facts
from inventory.read import changes
from inventory.services import admission, admission_records
from tests.factories import make_cluster, make_interface, make_node, make_reservation, make_team
from tests.integration.test_admission_webhook import POD, host_device, pod_object, post, review

pytestmark = [pytest.mark.urls("nicportal.urls_webhook")]

TABLE = AdmissionRecord._meta.db_table


@pytest.fixture
def writer(monkeypatch, settings):
    """Records queued for a writer of this test's own (a fresh one: no thread, no counts, no
    recent warning), stopped afterwards (its connection closed)."""
    settings.WEBHOOK_RECORD_ASYNC = True
    fresh = admission_records.RecordWriter()
    monkeypatch.setattr(admission_records, "WRITER", fresh)
    yield fresh
    fresh.stop()


@pytest.fixture
def inventory(settings):
    """node-a's eth2 reserved by team platform and NAD default/fast selecting it: a pod of
    namespace ml (team ml) pinned to node-a is denied."""
    settings.CLUSTER_NAME = "prod"
    settings.WEBHOOK_MODE = "enforce"
    cluster = make_cluster(name="prod")
    node = make_node(cluster, name="node-a", labels={"kubernetes.io/hostname": "node-a"})
    platform, ml = make_team("platform"), make_team("ml")
    TeamNamespace.objects.create(team=ml, pattern="ml")
    eth2 = make_interface(node, name="eth2", state=OwnershipState.RESERVED, holder="team platform")
    make_reservation(eth2, platform)
    NetworkAttachment.objects.create(
        cluster=cluster, namespace="default", name="fast", config=host_device("fast", device="eth2")
    )
    admission_facts.INDEX.background = False
    admission_facts.INDEX.clear()
    yield
    admission_facts.INDEX.clear()
    admission_facts.INDEX.background = True


def denial(name: str) -> dict:
    return review(POD, pod_object(name, "default/fast", nodeName="node-a"), namespace="ml")


def deny(client, name: str) -> None:
    assert post(client, denial(name))["allowed"] is False


def counts() -> dict[str, int]:
    return dict(AdmissionRecord.objects.values_list("name", "count"))


class TableLock:
    """The record table locked by another session (as a long transaction or a slow database
    would hold it): the writer's INSERT waits until release()."""

    def __init__(self) -> None:
        if connection.vendor != "postgresql":
            pytest.skip("locks the table from another PostgreSQL session (the PostgreSQL pass)")
        self.conn = psycopg.connect(**changes.connection_params())
        self.conn.execute(f"LOCK TABLE {TABLE} IN EXCLUSIVE MODE")

    def writer_waits(self, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with psycopg.connect(**changes.connection_params(), autocommit=True) as probe:
            while time.monotonic() < deadline:
                waiting = probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE %s",
                    [f"INSERT INTO {TABLE}%"],
                ).fetchone()[0]
                if waiting:
                    return True
                time.sleep(0.02)
        return False

    def release(self) -> None:
        self.conn.rollback()
        self.conn.close()


# --- the rows of a batch (no database) ------------------------------------------------------


def test_a_batch_sums_each_keys_records_and_keeps_its_latest_values():
    at = datetime(2026, 12, 2, tzinfo=UTC)

    def entry(name: str, uid: str, seconds: int) -> admission_records.Entry:
        return admission_records.Entry.of(
            cluster="prod",
            resource="pods",
            namespace="ml",
            name=name,
            codes="DEVICE_RESERVED",
            enforced=True,
            operation="CREATE",
            username="alice",
            uid=uid,
            message="m",
            last_at=at + timedelta(seconds=seconds),
        )

    rows = admission_records.rows_of(
        [entry("b", "1", 5), entry("a", "2", 1), entry("b", "3", 9), entry("b", "4", 2)]
    )
    assert [(dict(zip(admission_records.KEY, r.key))["name"], r.count) for r in rows] == [
        ("a", 1),
        ("b", 3),
    ]
    latest = dict(zip(admission_records.VALUES, rows[1].values))
    assert latest["uid"] == "3" and latest["last_at"] == at + timedelta(seconds=9)
    assert rows[1].first_at == at + timedelta(seconds=2)


# --- off the response path ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_the_review_queues_the_record_and_the_writer_writes_it(client, inventory, writer):
    admission_facts.INDEX.reload()
    with CaptureQueriesContext(connection) as queries:
        deny(client, "p")
    written = [q["sql"] for q in queries if TABLE in q["sql"]]
    assert written == []  # the review's own connection read the interfaces, wrote nothing
    assert [q["sql"] for q in queries if "inventory_interface" in q["sql"]]
    assert writer.flush(10)
    record = AdmissionRecord.objects.get()
    assert (record.name, record.count, record.codes) == ("p", 1, "DEVICE_RESERVED")
    assert record.username == "alice" and record.enforced and record.message
    assert writer.running and writer.written == 1


@pytest.mark.django_db
def test_a_review_inside_a_transaction_writes_its_record_itself(client, inventory, writer):
    # The test's transaction: a writer on another connection would write outside it.
    with CaptureQueriesContext(connection) as queries:
        deny(client, "p")
    assert [q["sql"] for q in queries if "INSERT INTO" in q["sql"] and TABLE in q["sql"]]
    assert AdmissionRecord.objects.get().count == 1
    assert not writer.running


@pytest.mark.django_db(transaction=True)
def test_denials_queued_together_are_each_counted(client, inventory, writer):
    deny(client, "warm")  # the writer runs, its connection open
    assert writer.flush(10)
    batches = writer.batches
    lock = TableLock()
    try:
        deny(client, "p")
        assert lock.writer_waits(), "the writer did not reach the locked table"
        for _ in range(24):  # queued behind the waiting batch: one batch when it is released
            deny(client, "p")
        deny(client, "q")
        deny(client, "q")
    finally:
        lock.release()
    assert writer.flush(10)
    assert counts() == {"warm": 1, "p": 25, "q": 2}
    assert writer.batches - batches == 2  # the waiting batch, then all the others in one
    assert writer.written == 28


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_full_queue_drops_the_record_counts_it_and_the_review_answers(
    client, inventory, writer, settings, caplog
):
    settings.WEBHOOK_RECORD_QUEUE = 2
    admission.flush_counters()  # earlier tests' counts still pending in this process
    before = admission.read_counters().get("records_dropped|queue_full", 0)
    deny(client, "warm")
    assert writer.flush(10)
    lock = TableLock()
    caplog.set_level(logging.WARNING, logger="inventory.admission")
    try:
        deny(client, "p")  # taken by the writer, which waits for the lock
        assert lock.writer_waits(), "the writer did not reach the locked table"
        started = time.monotonic()
        for _ in range(5):  # two fit in the queue, three are dropped
            deny(client, "p")
        assert time.monotonic() - started < 5  # answered without waiting for the writer
    finally:
        lock.release()
    assert writer.flush(10)
    assert counts() == {"warm": 1, "p": 3}
    drops = [r for r in caplog.records if "admission records dropped" in r.getMessage()]
    assert len(drops) == 1 and "1 since the last warning" in drops[0].getMessage()
    admission.flush_counters()
    assert admission.read_counters()["records_dropped|queue_full"] - before == 3
    settings.ROOT_URLCONF = "nicportal.urls_ops"
    scraped = client.get("/metrics", HTTP_HOST="localhost").content.decode()
    samples = {
        (s.name, s.labels.get("reason")): s.value
        for family in text_string_to_metric_families(scraped)
        for s in family.samples
    }
    assert samples[("nicportal_admission_records_dropped_total", "queue_full")] == before + 3
    assert ("nicportal_admission_records_dropped_total", "write_failed") in samples


@pytest.mark.django_db(transaction=True)
def test_the_writer_outlives_its_connection_being_killed(client, inventory, writer, caplog):
    if connection.vendor != "postgresql":
        pytest.skip("ends a PostgreSQL session (the PostgreSQL pass runs this)")
    deny(client, "p")
    assert writer.flush(10)
    killed = writer.backend_pid
    connection.ensure_connection()
    assert killed and killed != connection.connection.info.backend_pid  # the writer's own
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [killed])
    caplog.set_level(logging.WARNING, logger="inventory.admission")
    deny(client, "p")  # its first write fails on the dead connection, the second lands
    assert writer.flush(10)
    deny(client, "q")
    assert writer.flush(10)
    assert counts() == {"p": 2, "q": 1}
    assert writer.running and writer.backend_pid not in (0, killed)
    assert any("writing them again on a new connection" in r.getMessage() for r in caplog.records)
    assert not writer.take_dropped()


@pytest.mark.django_db(transaction=True)
def test_a_batch_that_fails_twice_is_dropped_and_the_writer_goes_on(
    client, inventory, writer, caplog
):
    deny(client, "p")
    assert writer.flush(10)
    with connection.cursor() as cursor:  # the table gone for a moment (a broken migration)
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {TABLE}_away")
    try:
        caplog.set_level(logging.WARNING, logger="inventory.admission")
        deny(client, "p")
        assert writer.flush(10)
    finally:
        with connection.cursor() as cursor:
            cursor.execute(f"ALTER TABLE {TABLE}_away RENAME TO {TABLE}")
    assert writer.take_dropped() == {"write_failed": 1}
    assert any("not written again" in r.getMessage() for r in caplog.records)
    deny(client, "p")
    assert writer.flush(10)
    assert counts() == {"p": 2} and writer.running


@pytest.mark.django_db(transaction=True)
def test_a_forked_child_starts_its_own_writer(client, inventory, writer):
    if connection.vendor != "postgresql":
        pytest.skip("the child writes to the test database over its own connection")
    deny(client, "p")
    assert writer.flush(10)
    entry = admission_records.Entry.of(
        cluster="prod",
        resource="pods",
        namespace="ml",
        name="from-child",
        codes="DEVICE_RESERVED",
        enforced=True,
        operation="CREATE",
        username="child",
        uid="c",
        message="written by the child's writer",
        last_at=datetime.now(UTC),
    )
    child = os.fork()
    if child == 0:  # the child: never back into pytest, nor onto the parent's connection
        code = 1
        try:
            queued = writer.put(entry)
            written = writer.flush(10)
            code = 0 if queued and written and writer.running else 2
            writer.stop()
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child's record was not written"
    assert counts() == {"p": 1, "from-child": 1}
    assert writer.running  # the parent's writer is untouched
    deny(client, "p")
    assert writer.flush(10) and counts()["p"] == 2
