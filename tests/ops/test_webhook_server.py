"""The admission webhook server as deployed: gunicorn with nicportal/webhook_gunicorn.py, HTTPS
with a certificate from `manage.py webhookcert` (the self-signed path), reading the test
database. A client that trusts the CA gets AdmissionReview answers; the server serves nothing of
the UI; a client that does not trust the CA, or speaks plain HTTP, gets nothing."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from cryptography import x509
from django.core.management import call_command

from inventory.models import AdmissionRecord, Cluster
from inventory.read import changes
from tests.ops.servers import database_url, free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).parent / "gunicorn"

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def certificates(tmp_path) -> Path:
    out = tmp_path / "tls"
    call_command("webhookcert", "--out", str(out), "--ip", "127.0.0.1", "--dns", "localhost")
    return out


@contextlib.contextmanager
def serving(certificates: Path, tmp_path: Path, **extra: str) -> Iterator[tuple[Any, str]]:
    """gunicorn with nicportal/webhook_gunicorn.py and one worker: (its process, its URL)."""
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": database_url(),
        "NICPORTAL_WEBHOOK_TLS_DIR": str(certificates),
        "NICPORTAL_WEBHOOK_LISTEN": f"127.0.0.1:{port}",
        "NICPORTAL_WEBHOOK_WORKERS": "1",
        "NICPORTAL_WEBHOOK_TMP_DIR": str(tmp_path),
        "NICPORTAL_VAR_DIR": str(tmp_path / "var"),
        "NICPORTAL_CLUSTER_NAME": "default",
        "PYTHONPATH": str(ROOT),
        **extra,
    }
    log = (tmp_path / "webhook.log").open("w")
    process = subprocess.Popen(
        [str(GUNICORN), "-c", "python:nicportal.webhook_gunicorn", "nicportal.wsgi:application"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"https://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                requests.get(f"{base}/healthz", verify=certificates / "ca.crt", timeout=10)
                break
            except (requests.ConnectionError, requests.Timeout):
                assert process.poll() is None, (tmp_path / "webhook.log").read_text()
                assert time.monotonic() < deadline, "the webhook server did not start"
                time.sleep(0.2)
        yield process, base
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        log.close()


@pytest.fixture
def webhook_server(certificates, tmp_path) -> Iterator[str]:
    Cluster.objects.create(name="default")
    with serving(certificates, tmp_path) as (_, base):
        yield base


def test_webhookcert_makes_a_ca_and_a_serving_certificate_for_the_names(certificates):
    ca = x509.load_pem_x509_certificate((certificates / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((certificates / "tls.crt").read_bytes())
    assert cert.issuer == ca.subject
    ca.public_key().verify(
        cert.signature, cert.tbs_certificate_bytes, *_ecdsa(cert.signature_hash_algorithm)
    )
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert [str(i) for i in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert oct((certificates / "tls.key").stat().st_mode & 0o777) == "0o600"
    assert oct((certificates / "ca.key").stat().st_mode & 0o777) == "0o600"


def test_a_second_run_renews_the_serving_certificate_under_the_same_ca(certificates, capsys):
    ca_before = (certificates / "ca.crt").read_bytes()
    cert_before = (certificates / "tls.crt").read_bytes()
    call_command("webhookcert", "--out", str(certificates), "--ip", "127.0.0.1")
    assert (certificates / "ca.crt").read_bytes() == ca_before
    assert (certificates / "tls.crt").read_bytes() != cert_before
    printed = capsys.readouterr().out
    assert "reusing the CA" in printed and "caBundle: " in printed


def _ecdsa(algorithm):
    from cryptography.hazmat.primitives.asymmetric import ec

    return (ec.ECDSA(algorithm),)


def nad_review(uid: str, name: str, nad: dict) -> dict:
    """The AdmissionReview v1 the API server sends for creating this NAD in `default`."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": uid,
            "resource": {
                "group": "k8s.cni.cncf.io",
                "version": "v1",
                "resource": "network-attachment-definitions",
            },
            "operation": "CREATE",
            "namespace": "default",
            "name": name,
            "object": nad,
        },
    }


def test_the_server_answers_reviews_over_tls_and_serves_nothing_else(webhook_server, certificates):
    seed = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "macvlan-conf", "namespace": "default"},
        "spec": {"config": '{"cniVersion": "0.3.1", # the uplink\n "type": "host-device"}'},
    }
    body = nad_review("7f0c", "macvlan-conf", seed)
    ca = certificates / "ca.crt"
    answer = requests.post(f"{webhook_server}/validate", json=body, verify=ca, timeout=10)
    assert answer.status_code == 200
    review = answer.json()["response"]
    assert review["uid"] == "7f0c" and review["allowed"] is False
    assert review["status"]["details"]["causes"][0]["reason"] == "CONFIG_INVALID_JSON"
    # Its record is written by the worker's writer thread (started in the forked worker, not in
    # the gunicorn master), a moment after the answer.
    deadline = time.monotonic() + 10
    while not AdmissionRecord.objects.filter(name="macvlan-conf", uid="7f0c").exists():
        assert time.monotonic() < deadline, "the denial's record was not written"
        time.sleep(0.05)
    bad = requests.post(f"{webhook_server}/validate", data=b"{", verify=ca, timeout=10)
    assert bad.status_code == 400 and "not JSON" in bad.json()["error"]
    for path in ("/", "/api/v1/interfaces/", "/metrics", "/admin/"):
        assert requests.get(webhook_server + path, verify=ca, timeout=10).status_code == 404
    assert json.loads(requests.get(f"{webhook_server}/healthz", verify=ca, timeout=10).text) == {
        "status": "ok"
    }


def test_a_stopping_worker_writes_the_records_still_queued(certificates, tmp_path):
    # The record table locked by another session: the worker's writer waits on its INSERT when
    # the server is told to stop; released half a second later, the record must still land (the
    # worker flushes its writer before exiting, nicportal/webhook_gunicorn.py worker_exit).
    if not database_url().startswith("postgres"):
        pytest.skip("locks the table from another PostgreSQL session (the PostgreSQL pass)")
    Cluster.objects.create(name="default")
    table = AdmissionRecord._meta.db_table
    late = {
        "metadata": {"name": "late", "namespace": "default"},
        "spec": {"config": '{"cniVersion": "0.3.1", # x\n "type": "host-device"}'},
    }
    body = nad_review("exit-1", "late", late)
    # No statement cap: the writer waits for the lock as long as the test holds it.
    with serving(certificates, tmp_path, NICPORTAL_DB_STATEMENT_TIMEOUT_MS="0") as (server, base):
        lock = psycopg.connect(**changes.connection_params())
        try:
            lock.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
            answer = requests.post(
                f"{base}/validate", json=body, verify=certificates / "ca.crt", timeout=10
            )
            assert answer.json()["response"]["allowed"] is False
            deadline = time.monotonic() + 10
            with psycopg.connect(**changes.connection_params(), autocommit=True) as probe:
                while not probe.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                    " AND query LIKE %s",
                    [f"INSERT INTO {table}%"],
                ).fetchone()[0]:
                    assert time.monotonic() < deadline, "the writer did not reach the lock"
                    time.sleep(0.02)
            server.terminate()
            time.sleep(2.5)
            assert not AdmissionRecord.objects.filter(uid="exit-1").exists()
        finally:
            lock.rollback()
            lock.close()
        server.wait(timeout=15)
    assert AdmissionRecord.objects.get(uid="exit-1").name == "late"
    assert "still queued at exit" not in (tmp_path / "webhook.log").read_text()


def test_the_server_is_trusted_only_through_its_ca_and_speaks_only_tls(webhook_server):
    with pytest.raises(requests.exceptions.SSLError):
        requests.get(f"{webhook_server}/healthz", timeout=10)  # the system CAs do not know it
    plain = webhook_server.replace("https://", "http://")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{plain}/healthz", timeout=10)


def test_the_servers_sessions_do_not_wait_for_the_wal_flush_and_cap_statements(settings):
    # Its only writes are AdmissionRecords (a log), by its writer thread: one upsert per batch,
    # committed without waiting for the flush; every statement capped under the deadline.
    if not settings.DATABASES["default"]["ENGINE"].endswith("postgresql"):
        pytest.skip("session settings of PostgreSQL (the PostgreSQL pass runs this)")
    show = (
        "from django.conf import settings\n"
        "print('records', 'async' if settings.WEBHOOK_RECORD_ASYNC else 'sync')\n"
        "from django.db import connection\n"
        "with connection.cursor() as c:\n"
        "    c.execute('SHOW synchronous_commit'); print(c.fetchone()[0])\n"
        "    c.execute('SHOW statement_timeout'); print(c.fetchone()[0])\n"
    )
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show],
        cwd=ROOT,
        env={**env, "NICPORTAL_WEBHOOK_SERVER": "1", "NICPORTAL_DB_STATEMENT_TIMEOUT_MS": "1500"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.split()[-2:] == ["off", "1500ms"], out.stdout + out.stderr
    assert "records async" in out.stdout  # a denial's record is written by the writer thread
    web = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", show],
        cwd=ROOT,
        env={k: v for k, v in env.items() if not k.startswith("NICPORTAL_WEBHOOK")},
        capture_output=True,
        text=True,
        check=True,
    )
    assert web.stdout.split()[-2] == "on", web.stderr  # the web portal's writes wait for it
    assert "records sync" in web.stdout
