"""The production profile passes `manage.py check --deploy` with no warning at all."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def check_deploy(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "NICPORTAL_"))}
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_production_profile_passes_check_deploy_without_warnings(tmp_path):
    result = check_deploy(
        {
            "NICPORTAL_PRODUCTION": "1",
            "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
            "NICPORTAL_AGENT_MASTER_KEY": secrets.token_urlsafe(32),
            "DJANGO_ALLOWED_HOSTS": "nicportal.example.com",
            "NICPORTAL_VAR_DIR": str(tmp_path),
        }
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "security.W" not in output, output
    assert "no issues" in output


def test_the_development_profile_is_what_check_deploy_flags(tmp_path):
    # Proves the check above can fail: without the production profile Django complains.
    result = check_deploy({"NICPORTAL_VAR_DIR": str(tmp_path)})
    assert result.returncode != 0
    assert "security.W" in result.stdout + result.stderr
