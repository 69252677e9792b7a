"""`manage.py showconfig`: what it reports, and that no secret ever appears in its output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from inventory.management.commands.showconfig import mask_url

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgres://nic:pa55@db:5432/nicportal", "postgres://nic:****@db:5432/nicportal"),
        ("redis://:pa55@redis:6379/0", "redis://:****@redis:6379/0"),
        ("redis://redis:6379/0?password=pa55&db=2", "redis://redis:6379/0?password=****&db=2"),
        ("redis://redis:6379/0", "redis://redis:6379/0"),
        ("filesystem://", "filesystem://"),
        ("postgres://nic@db/nicportal", "postgres://nic@db/nicportal"),
        ("", ""),
    ],
)
def test_it_masks_passwords_in_urls(url, masked):
    assert mask_url(url) == masked


# The only variables the command inherits from whoever runs the tests: none of them configures
# the portal, so a NICPORTAL_REDIS_URL or DATABASE_URL exported in the caller's shell cannot
# change what these tests see.
INHERITED = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")


def run_showconfig(env: dict[str, str], *args: str) -> str:
    inherited = {name: os.environ[name] for name in INHERITED if name in os.environ}
    result = subprocess.run(
        [sys.executable, "manage.py", "showconfig", *args],
        cwd=ROOT,
        env={**inherited, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


SECRETS = {
    "DJANGO_SECRET_KEY": "k" * 30 + "-very-secret-key-value-0123456789",
    "DATABASE_URL": "postgres://nic:db-pa55word@db.example:5433/nicportal",
    "CELERY_BROKER_URL": "redis://:broker-pa55word@redis.example:6380/0",
    "NICPORTAL_AGENT_MASTER_KEY": "agent-master-key-value-abcdef-0123456789",
    "NICPORTAL_METRICS_TOKEN": "metrics-token-value-abcdef-0123456789",
}


def test_it_reports_the_configuration_from_the_environment_with_secrets_masked(tmp_path):
    env = {
        **SECRETS,
        "NICPORTAL_VAR_DIR": str(tmp_path),
        "NICPORTAL_POLL_INTERVAL": "45",
        "NICPORTAL_CLUSTER_NAME": "mk8s",
        "KUBECONFIG": "/etc/nicportal/kubeconfig",
        "NICPORTAL_AGENT_NAMESPACE": "nicportal",
        "NICPORTAL_MULTUS_VERSION": "3.9",
        "NICPORTAL_PRODUCTION": "1",
        "DJANGO_ALLOWED_HOSTS": "nicportal.example.com",
        # The cache follows the broker unless told otherwise (a developer's shell may say).
        "NICPORTAL_REDIS_URL": "",
    }
    config = json.loads(run_showconfig(env, "--json"))
    assert config["production"] is True
    assert config["secret_key"] == "****"
    assert config["database"]["vendor"] == "postgresql"
    assert config["database"]["host"] == "db.example"
    assert config["database"]["port"] == "5433"
    assert config["database"]["password"] == "****"
    assert config["broker_url"] == "redis://:****@redis.example:6380/0"
    assert config["cache"] == {
        "backend": "RedisCache",
        "location": "redis://:****@redis.example:6380/1",
    }
    assert config["cluster"]["name"] == "mk8s"
    assert config["cluster"]["kubeconfig"] == "/etc/nicportal/kubeconfig"
    assert config["cluster"]["multus_version"] == "3.9"
    assert config["poll_interval"] == 45.0
    assert config["agent"]["namespace"] == "nicportal"
    assert config["agent"]["master_key"] == "****"
    assert config["agent"]["master_key_previous"] == "(not set)"
    assert config["agent"]["daemonset"] == "nicportal-agent"
    assert config["agent"]["stale_after"] == 135.0


def test_no_secret_appears_in_either_output_format(tmp_path):
    env = {**SECRETS, "NICPORTAL_VAR_DIR": str(tmp_path)}
    outputs = run_showconfig(env) + run_showconfig(env, "--json")
    leaks = (
        "very-secret-key",
        "db-pa55word",
        "broker-pa55word",
        "agent-master-key",
        "metrics-token",
    )
    for leaked in leaks:
        assert leaked not in outputs
    assert "****" in outputs


def test_it_says_when_a_secret_is_not_set(settings):
    settings.AGENT_MASTER_KEY = ""
    settings.METRICS_TOKEN = ""
    out = StringIO()
    call_command("showconfig", stdout=out)
    lines = dict(line.split(None, 1) for line in out.getvalue().splitlines() if " " in line)
    assert lines["agent.master_key"].strip() == "(not set)"
    assert lines["metrics_token"].strip() == "(not set)"
    assert lines["poll_interval"].strip() == str(settings.POLL_INTERVAL)
