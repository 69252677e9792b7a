"""The Celery app. Configuration comes from Django settings (CELERY_* names).

The `celery` command loads what `make run` set (var/run.env, see nicportal/runenv.py) through a
preload option: Celery sends `user_preload_options` before the command reads any setting, and
only its command line does, so importing this module (the tests do) never reads the file.
"""

import os
from pathlib import Path

import click
from celery import Celery, signals

from nicportal import runenv

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "nicportal.settings")

app = Celery("nicportal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.user_options["preload"].add(
    click.Option(
        ["--run-env"],
        default=None,
        help="Environment file written by `make run` (default: var/run.env; '' for none).",
    )
)


@signals.user_preload_options.connect
def load_run_env(options: dict, **kwargs: object) -> None:
    chosen = options.get("run_env")
    if chosen is None:
        runenv.load()
    elif chosen:
        runenv.load(Path(chosen))
