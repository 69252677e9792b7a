"""A second shell just works: manage.py, the celery command and `python -m lab` read the
var/run.env `make run` wrote, for every variable their own environment does not set, and a
command run without one creates no stray database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from nicportal import runenv

ROOT = Path(__file__).resolve().parents[2]
BIN = ROOT / ".venv" / "bin"


def second_shell(var_dir: Path, *command: str, **extra: str) -> subprocess.CompletedProcess:
    """A command as a person types it in another shell: none of make run's variables set."""
    env = {
        "PATH": f"{BIN}:/usr/bin:/bin",
        "HOME": os.environ.get("HOME", "/root"),
        "NICPORTAL_VAR_DIR": str(var_dir),
        **extra,
    }
    return subprocess.run(
        list(command), cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_manage_py_takes_the_database_and_cluster_from_run_env(tmp_path):
    database = tmp_path / "demo.sqlite3"
    runenv.write(
        tmp_path / "run.env",
        {
            "DATABASE_URL": f"sqlite:///{database}",
            "KUBECONFIG": "/var/lab/demo/kubeconfig",
            "NICPORTAL_CLUSTER_NAME": "lab",
            "NICPORTAL_MULTUS_VERSION": "4.1",
        },
    )
    done = second_shell(tmp_path, sys.executable, "manage.py", "showconfig", "--json")
    assert done.returncode == 0, done.stderr
    config = json.loads(done.stdout)
    assert config["database"]["name"] == str(database)
    assert config["cluster"]["kubeconfig"] == "/var/lab/demo/kubeconfig"
    assert config["cluster"]["name"] == "lab"
    assert config["cluster"]["multus_version"] == "4.1"
    assert config["run_env"] == str(tmp_path / "run.env")


def test_the_shells_own_value_wins_over_the_file(tmp_path):
    runenv.write(tmp_path / "run.env", {"NICPORTAL_CLUSTER_NAME": "lab"})
    done = second_shell(
        tmp_path,
        sys.executable,
        "manage.py",
        "showconfig",
        "--json",
        NICPORTAL_CLUSTER_NAME="mine",
    )
    assert json.loads(done.stdout)["cluster"]["name"] == "mine"


def test_a_command_against_a_database_from_run_env_creates_no_stray_sqlite_file(tmp_path):
    database = tmp_path / "demo.sqlite3"
    runenv.write(tmp_path / "run.env", {"DATABASE_URL": f"sqlite:///{database}"})
    migrate = second_shell(tmp_path, sys.executable, "manage.py", "migrate", "-v0")
    assert migrate.returncode == 0, migrate.stderr
    done = second_shell(tmp_path, sys.executable, "manage.py", "seeddemo")
    assert done.returncode == 0, done.stderr
    token = second_shell(tmp_path, sys.executable, "manage.py", "createtoken", "demo")
    assert token.returncode == 0, token.stderr
    assert len(token.stdout.strip()) == 64
    assert not (tmp_path / "nicportal.sqlite3").exists()
    assert database.exists()


def test_the_celery_command_reads_it_before_its_settings(tmp_path):
    runenv.write(tmp_path / "run.env", {"CELERY_BROKER_URL": "redis://127.0.0.1:6399/7"})
    done = second_shell(tmp_path, str(BIN / "celery"), "-A", "nicportal", "report")
    assert done.returncode == 0, done.stderr
    assert "redis://127.0.0.1:6399/7" in done.stdout
    ignored = second_shell(
        tmp_path, str(BIN / "celery"), "-A", "nicportal", "--run-env", "", "report"
    )
    assert "redis://127.0.0.1:6399/7" not in ignored.stdout


def test_python_m_lab_takes_the_labs_name_and_folder(tmp_path):
    lab_dir = tmp_path / "labs"
    (lab_dir / "rt7").mkdir(parents=True)
    runenv.write(
        tmp_path / "run.env", {"NICPORTAL_LAB_NAME": "rt7", "NICPORTAL_LAB_DIR": str(lab_dir)}
    )
    done = second_shell(tmp_path, sys.executable, "-m", "lab", "status", "--json")
    # Not set up (no lab.json): the answer still names the lab run.env chose.
    assert json.loads(done.stdout) == {"name": "rt7", "running": False}
    # `python -m lab pod` finds the same lab (here: none there yet), and says so in one line.
    pods = second_shell(tmp_path, sys.executable, "-m", "lab", "pod", "list")
    assert pods.returncode == 1 and "Traceback" not in pods.stderr
    assert pods.stderr == "lab: no lab rt7 here: `python -m lab up --name rt7` makes one\n"


def test_an_empty_NICPORTAL_RUN_ENV_loads_nothing(tmp_path):
    runenv.write(tmp_path / "run.env", {"NICPORTAL_CLUSTER_NAME": "lab"})
    done = second_shell(
        tmp_path, sys.executable, "manage.py", "showconfig", "--json", NICPORTAL_RUN_ENV=""
    )
    config = json.loads(done.stdout)
    assert config["cluster"]["name"] == "default" and config["run_env"] == "(none)"
