"""Under NICPORTAL_PRODUCTION=1 the process refuses to start with a secret that is no secret: a
placeholder from deploy/kubernetes/secrets.yaml, the development key, a short or patterned
value. Each case runs a real `manage.py check` process and reads its exit code and message."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from nicportal.env import DEVELOPMENT_SECRET_KEY

ROOT = Path(__file__).resolve().parents[2]
SECRETS_YAML = ROOT / "deploy" / "kubernetes" / "secrets.yaml"


def good_env(tmp_path: Path) -> dict[str, str]:
    return {
        "NICPORTAL_PRODUCTION": "1",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "NICPORTAL_AGENT_MASTER_KEY": secrets.token_urlsafe(32),
        "DJANGO_ALLOWED_HOSTS": "nicportal.example.com",
        "NICPORTAL_VAR_DIR": str(tmp_path),
    }


def start(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "NICPORTAL_"))}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def template_values() -> dict[str, str]:
    """Every stringData value of the shipped secret templates, by key."""
    values: dict[str, str] = {}
    for document in yaml.safe_load_all(SECRETS_YAML.read_text()):
        values.update((document or {}).get("stringData") or {})
    return values


def test_a_production_process_starts_with_real_secrets(tmp_path):
    result = start(good_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_the_templates_still_hold_the_placeholders_this_file_tests():
    values = template_values()
    assert "REPLACE_ME" in values["DJANGO_SECRET_KEY"]
    assert "REPLACE_ME" in values["NICPORTAL_AGENT_MASTER_KEY"]
    assert "REPLACE_ME" in values["DATABASE_URL"]


@pytest.mark.parametrize(
    ("variable", "template_key"),
    [
        ("DJANGO_SECRET_KEY", "DJANGO_SECRET_KEY"),
        ("NICPORTAL_AGENT_MASTER_KEY", "NICPORTAL_AGENT_MASTER_KEY"),
        ("NICPORTAL_AGENT_MASTER_KEY_PREVIOUS", "NICPORTAL_AGENT_MASTER_KEY"),
        ("DATABASE_URL", "DATABASE_URL"),
    ],
)
def test_each_placeholder_of_the_templates_stops_the_process_naming_the_variable(
    tmp_path, variable, template_key
):
    placeholder = template_values()[template_key]
    result = start({**good_env(tmp_path), variable: placeholder})
    assert result.returncode != 0
    assert variable in result.stderr
    assert "placeholder" in result.stderr
    if variable != "DATABASE_URL":
        assert placeholder not in result.stderr  # named, never echoed


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("DJANGO_SECRET_KEY", DEVELOPMENT_SECRET_KEY, "the development key"),
        ("DJANGO_SECRET_KEY", secrets.token_urlsafe(20), "too short"),
        ("DJANGO_SECRET_KEY", "ab" * 40, "not random"),
        ("DJANGO_SECRET_KEY", "changeme-" + secrets.token_urlsafe(50), "placeholder"),
        ("NICPORTAL_AGENT_MASTER_KEY", "", "must be set"),
        ("NICPORTAL_AGENT_MASTER_KEY", secrets.token_hex(8), "too short"),
        ("NICPORTAL_AGENT_MASTER_KEY", "0" * 64, "not random"),
        ("NICPORTAL_METRICS_TOKEN", "s3cret-scrape-token", "too short"),
    ],
)
def test_a_weak_secret_stops_the_process_naming_the_variable(tmp_path, variable, value, reason):
    result = start({**good_env(tmp_path), variable: value})
    assert result.returncode != 0
    assert variable in result.stderr and reason in result.stderr


def test_a_placeholder_read_from_a_file_names_the_variable_and_the_file(tmp_path):
    key_file = tmp_path / "master"
    key_file.write_text(template_values()["NICPORTAL_AGENT_MASTER_KEY"] + "\n")
    env = good_env(tmp_path)
    del env["NICPORTAL_AGENT_MASTER_KEY"]
    result = start({**env, "NICPORTAL_AGENT_MASTER_KEY_FILE": str(key_file)})
    assert result.returncode != 0
    assert f"NICPORTAL_AGENT_MASTER_KEY (read from NICPORTAL_AGENT_MASTER_KEY_FILE={key_file})" in (
        result.stderr
    )


def test_development_keeps_working_without_any_secret(tmp_path):
    # Proves the checks are the production profile's: the same process starts without it.
    result = start({"NICPORTAL_VAR_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr


def test_the_retired_shared_token_variable_stops_the_process_with_directions(tmp_path):
    result = start({**good_env(tmp_path), "NICPORTAL_AGENT_TOKEN": secrets.token_urlsafe(32)})
    assert result.returncode != 0
    assert "NICPORTAL_AGENT_TOKEN is no longer read" in result.stderr
    assert "docs/agent-auth.md" in result.stderr
