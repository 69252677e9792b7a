"""What CI requires to be present (see .ci/run)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid


def skip_or_fail(reason: str) -> None:
    """A test that needs a part this machine lacks: skip locally, fail in CI
    (NICPORTAL_REQUIRE_SERVICES set), where every part must be there."""
    import pytest

    if os.environ.get("NICPORTAL_REQUIRE_SERVICES") in ("1", "sqlite"):
        pytest.fail(f"required part missing: {reason}")
    pytest.skip(reason)


def missing_parts(*, database: str = "postgres") -> list[str]:
    """database="sqlite" is the embedded pass that follows the PostgreSQL one in `make test`."""
    missing = []
    db_url = os.environ.get("DATABASE_URL", "")
    if database == "sqlite":
        if db_url:
            missing.append("the SQLite pass must run without DATABASE_URL")
    elif not db_url.startswith("postgres"):
        missing.append("PostgreSQL: DATABASE_URL must point at PostgreSQL in CI")
    else:
        import psycopg

        try:
            psycopg.connect(db_url.rsplit("/", 1)[0] + "/postgres", connect_timeout=5).close()
        except psycopg.Error as exc:
            missing.append(f"PostgreSQL unreachable: {exc}")
    try:
        import redis

        redis.Redis.from_url(
            os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0"),
            socket_connect_timeout=3,
        ).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means Redis is not usable
        missing.append(f"Redis unreachable: {exc}")
    chromium = os.environ.get("NICPORTAL_CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        missing.append(
            f"Chromium not found at {chromium} (apt-get install --no-install-recommends chromium)"
        )
    if not os.access("/usr/lib/cni/host-device", os.X_OK):
        missing.append(
            "host-device plugin missing"
            " (apt-get install --no-install-recommends containernetworking-plugins)"
        )

    from lab import components

    for name in components.COMPONENTS:
        try:
            components.binary(name)
        except components.ComponentError as exc:
            missing.append(str(exc))
    # The lab's kubectl tests use the machine's kubectl (this machine kind's image ships
    # /usr/bin/kubectl 1.32; Debian's kubernetes-client is 1.20, too old for the lab's 1.37).
    if not shutil.which("kubectl", path="/usr/local/bin:/usr/bin:/bin"):
        missing.append("kubectl missing from /usr/local/bin, /usr/bin or /bin")
    if not shutil.which("ip"):
        missing.append("iproute2 missing")
    else:
        name = f"nppreflight-{uuid.uuid4().hex[:8]}"
        made = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
        if made.returncode != 0:
            missing.append(f"network namespaces unavailable: {made.stderr.strip()}")
        else:
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    return missing
