"""var/run.env: what `make run` records for commands typed in another shell (nicportal/runenv)."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from lab import state as lab_state
from nicportal import runenv

AWKWARD = {
    "DATABASE_URL": "postgres://nic:p@ss w'rd$HOME@db:5432/nicportal",
    "KUBECONFIG": "/var/lab/demo/kubeconfig",
    "NICPORTAL_CLUSTER_NAME": "lab",
    "EMPTY": "",
}


def test_it_round_trips_values_with_quotes_spaces_and_dollars(tmp_path):
    path = tmp_path / "run.env"
    runenv.write(path, AWKWARD)
    assert runenv.read(path) == AWKWARD
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.parametrize("shell", ["sh", "bash", "zsh"])
def test_a_shell_that_sources_it_sees_the_same_values(tmp_path, shell):
    if not any(Path(d, shell).exists() for d in ("/bin", "/usr/bin")):
        pytest.skip(f"{shell} is not installed")
    path = tmp_path / "run.env"
    runenv.write(path, AWKWARD)
    printed = subprocess.run(
        [shell, "-c", f'. "{path}"; printf "%s" "$DATABASE_URL"'],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    ).stdout
    assert printed == AWKWARD["DATABASE_URL"]


def test_loading_never_overrides_the_environment(tmp_path):
    path = tmp_path / "run.env"
    runenv.write(path, {"DATABASE_URL": "sqlite:///from-file", "KUBECONFIG": "/from/file"})
    environ = {"DATABASE_URL": "sqlite:///from-shell"}
    added = runenv.load(path, environ)
    assert added == {"KUBECONFIG": "/from/file"}
    assert environ == {"DATABASE_URL": "sqlite:///from-shell", "KUBECONFIG": "/from/file"}


def test_a_missing_file_loads_nothing(tmp_path):
    environ: dict[str, str] = {}
    assert runenv.load(tmp_path / "run.env", environ) == {} and environ == {}


def test_a_broken_line_stops_the_command_naming_the_line(tmp_path):
    path = tmp_path / "run.env"
    path.write_text("KUBECONFIG='/ok'\nnot a definition\n")
    with pytest.raises(SystemExit, match=r"run.env:2: expected NAME='value'"):
        runenv.load(path, {})


def test_where_it_is_looked_for():
    assert runenv.default_path({}) == runenv.BASE_DIR / "var" / "run.env"
    assert runenv.default_path({"NICPORTAL_VAR_DIR": "/srv/var"}) == Path("/srv/var/run.env")
    assert runenv.default_path({"NICPORTAL_RUN_ENV": "/etc/x.env"}) == Path("/etc/x.env")
    assert runenv.default_path({"NICPORTAL_RUN_ENV": "", "NICPORTAL_VAR_DIR": "/v"}) is None


def test_it_records_the_products_variables_only():
    recorded = runenv.recorded(
        {
            "DATABASE_URL": "sqlite:///x",
            "KUBECONFIG": "/k",
            "NICPORTAL_AGENT_MASTER_KEY_FILE": "/t",
            "CELERY_BROKER_URL": "redis://r/0",
            "DJANGO_DEBUG": "0",
            "DJANGO_SETTINGS_MODULE": "nicportal.settings",
            "NICPORTAL_VAR_DIR": "/v",
            "NICPORTAL_RUN_ENV": "/v/run.env",
            "HOME": "/root",
            "PATH": "/usr/bin",
        }
    )
    assert sorted(recorded) == [
        "CELERY_BROKER_URL",
        "DATABASE_URL",
        "DJANGO_DEBUG",
        "KUBECONFIG",
        "NICPORTAL_AGENT_MASTER_KEY_FILE",
    ]


def test_the_lab_reads_the_file_the_portal_writes(tmp_path, monkeypatch):
    runenv.write(tmp_path / "run.env", {"NICPORTAL_LAB_NAME": "rt1", "KUBECONFIG": "/k"})
    monkeypatch.delenv("NICPORTAL_RUN_ENV", raising=False)
    # set, then unset: monkeypatch then removes what the lab adds to os.environ afterwards
    monkeypatch.setenv("NICPORTAL_LAB_NAME", "unset")
    monkeypatch.delenv("NICPORTAL_LAB_NAME")
    monkeypatch.setenv("NICPORTAL_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("KUBECONFIG", "/mine")
    assert lab_state.load_run_env() == {"NICPORTAL_LAB_NAME": "rt1"}
    assert lab_state.default_name() == "rt1"
    assert os.environ["KUBECONFIG"] == "/mine"


def test_the_test_suite_itself_loaded_no_file():
    # Only entry points load it; pytest imports the settings, never an entry point.
    assert runenv.loaded_from is None
    assert os.environ["NICPORTAL_RUN_ENV"] == ""
