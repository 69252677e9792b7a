"""The environment of the running portal, for commands started from another shell.

`make run` decides where the demo's database, kubeconfig and agent credentials are; the web
server, worker and beat it starts inherit that, but a second shell does not. So scripts/run
writes what it exported to `<var dir>/run.env` (`var/run.env` unless NICPORTAL_VAR_DIR says
otherwise), and the command-line entry points (manage.py, the Celery app, wsgi) load it for every
variable not already set in their own environment: `manage.py createtoken demo` then finds the
demo's database instead of creating an empty `var/nicportal.sqlite3`. `python -m lab` reads the
same file (lab/state.py) for the lab's name and folder.

Only entry points load it, never the settings module: the tests import the settings and must not
depend on a file a developer's last `make run` left behind. NICPORTAL_RUN_ENV names another file;
set it to an empty string to load none (the test suite does, for the commands it starts).

The file is `NAME='value'` lines in POSIX shell quoting, so a person can also `. var/run.env` in
sh, bash or zsh. It is written with mode 0600: DATABASE_URL may carry a password.

Standard library only: this module runs before Django is configured.
"""

from __future__ import annotations

import os
import re
import shlex
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from datetime import UTC, datetime
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
FILE_NAME = "run.env"
# What scripts/run exports that changes where or how the product runs.
RECORDED = re.compile(r"^(NICPORTAL_\w+|DJANGO_\w+|CELERY_\w+|DATABASE_URL|KUBECONFIG)$")
# Never recorded: they say where this file is, or belong to the test suite.
# (DJANGO_SETTINGS_MODULE: every entry point sets its own default.)
NOT_RECORDED = {
    "NICPORTAL_RUN_ENV",
    "NICPORTAL_VAR_DIR",
    "NICPORTAL_REQUIRE_SERVICES",
    "DJANGO_SETTINGS_MODULE",
}
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# The file the entry point of this process loaded, if any (shown by `manage.py showconfig`).
loaded_from: Path | None = None


class RunEnvError(ValueError):
    """A line of the file is not NAME='value'."""


def default_path(environ: Mapping[str, str] | None = None) -> Path | None:
    """Where the entry points look: $NICPORTAL_RUN_ENV ("" = nowhere), else the var dir's."""
    environ = os.environ if environ is None else environ
    if "NICPORTAL_RUN_ENV" in environ:
        chosen = environ["NICPORTAL_RUN_ENV"].strip()
        return Path(chosen) if chosen else None
    var_dir = environ.get("NICPORTAL_VAR_DIR") or str(BASE_DIR / "var")
    return Path(var_dir) / FILE_NAME


def parse(text: str, *, source: str = FILE_NAME) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        try:
            words = shlex.split(line, comments=True)
        except ValueError as exc:
            raise RunEnvError(f"{source}:{number}: {exc}") from None
        if not words:
            continue
        name, equals, value = words[0].partition("=")
        if len(words) != 1 or not equals or not NAME.match(name):
            raise RunEnvError(f"{source}:{number}: expected NAME='value', got {line.strip()!r}")
        values[name] = value
    return values


def read(path: Path) -> dict[str, str]:
    """The file's values; {} when there is no file."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    return parse(text, source=str(path))


def load(
    path: Path | None = None, environ: MutableMapping[str, str] | None = None
) -> dict[str, str]:
    """Set every variable of the file that `environ` (os.environ) does not have yet. Returns
    what was set. A broken file stops the command with its line number."""
    global loaded_from
    into_process = environ is None or environ is os.environ
    environ = os.environ if environ is None else environ
    path = default_path(environ) if path is None else path
    if path is None:
        return {}
    try:
        values = read(path)
    except (RunEnvError, OSError) as exc:
        sys.exit(f"error: {exc} (remove the file or fix the line)")
    if not values:
        return {}
    added = {name: value for name, value in values.items() if name not in environ}
    environ.update(added)
    if into_process:
        loaded_from = path
    return added


def render(values: Mapping[str, str], *, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC")
    lines = [
        f"# Written by `make run` (scripts/run) at {stamp}: the environment of the running portal.",
        "# manage.py, celery, wsgi and `python -m lab` read it for every variable not set in",
        "# their own environment; `. var/run.env` loads it into a shell (sh, bash, zsh).",
    ]
    lines += [f"{name}={shlex.quote(value)}" for name, value in sorted(values.items())]
    return "\n".join(lines) + "\n"


def recorded(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        for name, value in environ.items()
        if RECORDED.match(name) and name not in NOT_RECORDED
    }


def write(path: Path, values: Mapping[str, str]) -> None:
    """Write the file atomically with mode 0600 (a reader never sees half of it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(render(values))
    os.replace(partial, path)


def main(argv: Iterable[str] | None = None) -> int:
    """`python -m nicportal.runenv write`: record this process's environment (scripts/run)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args != ["write"]:
        print("usage: python -m nicportal.runenv write", file=sys.stderr)
        return 2
    path = default_path()
    if path is None:
        print("NICPORTAL_RUN_ENV is empty: nothing written", file=sys.stderr)
        return 0
    write(path, recorded(os.environ))
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
