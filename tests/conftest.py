"""Shared fixtures. The suite runs on whatever DATABASE_URL says (PostgreSQL in CI, SQLite
otherwise); CI sets NICPORTAL_REQUIRE_SERVICES=1 so that a missing PostgreSQL, Redis, Chromium,
host-device plugin or netns support fails the run instead of skipping tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["lab.pytest_plugin"]

# The commands the tests start (manage.py, celery, gunicorn, python -m lab) must not read the
# var/run.env a developer's last `make run` left behind (nicportal/runenv.py); a test that wants
# one points NICPORTAL_RUN_ENV or NICPORTAL_VAR_DIR at its own.
os.environ["NICPORTAL_RUN_ENV"] = ""

ARTIFACTS = Path(os.environ.get("NICPORTAL_ARTIFACTS", Path(__file__).parent.parent / "artifacts"))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Debian's Chromium, never a downloaded browser (no internet).
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("NICPORTAL_CHROMIUM", "/usr/bin/chromium"),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }


def pytest_sessionstart(session):
    """With NICPORTAL_REQUIRE_SERVICES=1 (CI), every real part the suite relies on must be there:
    a missing one stops the run with an error instead of letting tests skip."""
    required = os.environ.get("NICPORTAL_REQUIRE_SERVICES", "")
    if required not in ("1", "sqlite"):
        return
    from tests.preflight import missing_parts

    missing = missing_parts(database="sqlite" if required == "sqlite" else "postgres")
    if missing:
        pytest.exit("required parts missing:\n  - " + "\n  - ".join(missing), returncode=3)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup):
    """pytest-django's test database, and before it is dropped, the inventory change listener
    stopped: a fleet-wide review outside a transaction starts it (read/changes.py), and its
    connection would keep DROP DATABASE from running. So is the admission records' writer
    thread (services/admission_records.py), for the same reason."""
    from inventory.read import changes
    from inventory.services import admission_records

    yield
    changes.LISTENER.stop()
    admission_records.WRITER.stop()


@pytest.fixture(autouse=True)
def _clear_cache():
    """Agent contact times and locks live in the cache; each test starts without them."""
    from django.core.cache import cache

    cache.clear()
    yield


@pytest.fixture
def lab_portal(lab, settings):
    """The portal configured to watch the session's lab as its ServiceAccount with the shipped
    RBAC (deploy/kubernetes/rbac.yaml), with a clean lab (no test pods or NADs) and the inventory
    filled by one sweep. Yields the lab handle; cleans the lab up after."""
    from inventory.services import polling

    lab.reset()
    settings.KUBECONFIG = str(lab.portal_kubeconfig)
    settings.AGENT_MASTER_KEY = lab.agent_master_key
    settings.CLUSTER_NAME = "lab"
    settings.AGENT_NAMESPACE = "nicportal"
    settings.MULTUS_VERSION = ""
    report = polling.sweep_inline(workers=4)
    assert report.cluster_error == "", report.cluster_error
    yield lab
    lab.reset()
