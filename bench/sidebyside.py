"""Side by side: the same API and HTML scenarios against NICPortal and a peer, through real HTTP
servers, measured with wrk (requests per second and latency percentiles).

    .venv/bin/python -m bench.sidebyside --scenarios bench/sidebyside.toml --json out.json

The scenario file (TOML) names the targets and, per scenario, each target's path. A target is
either served by this harness (``serve = true``: gunicorn with ``workers`` sync workers on this
checkout, over the benchmark's PostgreSQL database filled by a cold sweep of the simulated
fleet to ``--interfaces`` rows), or any running server given by ``url`` with the headers its API
and its HTML pages need (``api_header``, ``html_header``). ``${NAME}`` in the file is taken from
the environment, so tokens and cookies never have to be written into it; for the targets it
serves, the harness sets ``${NODE}`` (a node in the middle of the fleet) and ``${DEEP_OFFSET}``
(the offset of the last full page of interfaces) itself.

Runs are interleaved: round by round, scenario by scenario, each target in turn, so a change of
the machine's load hits every target alike. Each run is ``wrk -t THREADS -c CONNECTIONS -d
DURATION --latency``, preceded by one checked request (a non-200 answer skips that scenario for
that target, reported as such). Loads are bounded (see LIMITS) and, unless ``--allow-remote``
is given, only go to loopback addresses.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from bench import portal

LIMITS = {"duration": 60, "connections": 64, "threads": 8, "rounds": 5, "workers": 8}
DEFAULTS = {"duration": 10, "connections": 8, "threads": 2, "rounds": 2}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60000.0}


class ScenarioError(Exception):
    """The scenario file is wrong; the message names the key."""


def expand(value: str, variables: dict[str, str], where: str) -> str:
    def replace(match: re.Match) -> str:
        name = match.group(1)
        if name not in variables:
            raise ScenarioError(f"{where}: ${{{name}}} is not set in the environment")
        return variables[name]

    return _VARIABLE.sub(replace, value)


def load_scenarios(path: Path, overrides: dict[str, int] | None = None) -> dict[str, Any]:
    """The scenario file, checked: settings within LIMITS, every scenario has a name, a kind
    ("api" or "html") and a path for at least one target."""
    data = tomllib.loads(path.read_text())
    settings = {**DEFAULTS, **data.get("settings", {}), **(overrides or {})}
    for key, limit in LIMITS.items():
        value = settings.get(key)
        if value is not None and not (isinstance(value, int) and 1 <= value <= limit):
            raise ScenarioError(f"settings.{key} must be an integer from 1 to {limit}")
    targets = data.get("targets") or {}
    if not targets:
        raise ScenarioError("[targets] must name at least one target")
    for name, target in targets.items():
        if not target.get("serve") and not target.get("url"):
            raise ScenarioError(f"targets.{name}: give url (a running server) or serve = true")
    scenarios = data.get("scenarios") or []
    for index, scenario in enumerate(scenarios):
        where = f"scenarios[{index}]"
        if not scenario.get("name"):
            raise ScenarioError(f"{where}.name is missing")
        if scenario.get("kind") not in ("api", "html"):
            raise ScenarioError(f"{where}.kind must be 'api' or 'html'")
        if not any(isinstance(scenario.get(name), str) for name in targets):
            raise ScenarioError(f"{where} gives no path for any target ({', '.join(targets)})")
    return {"settings": settings, "targets": targets, "scenarios": scenarios}


def check_loopback(url: str, allow_remote: bool) -> None:
    host = urllib.parse.urlsplit(url).hostname or ""
    if allow_remote:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError as error:
        raise ScenarioError(f"cannot resolve {host!r}: {error}") from error
    if not all(ipaddress.ip_address(address.split("%")[0]).is_loopback for address in addresses):
        raise ScenarioError(f"{url} is not a loopback address; pass --allow-remote to load it")


def parse_wrk(output: str) -> dict[str, Any]:
    """Requests/sec, latency percentiles (ms), and errors from ``wrk --latency`` output."""

    def millis(text: str) -> float:
        match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
        if not match:
            raise ValueError(f"unexpected wrk latency {text!r}")
        return round(float(match.group(1)) * _UNITS[match.group(2)], 3)

    result: dict[str, Any] = {"latency_ms": {}}
    for percentile, value in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", output, re.MULTILINE):
        result["latency_ms"][f"p{percentile}"] = millis(value)
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", output, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in", output, re.MULTILINE)
    if not rate or not total or len(result["latency_ms"]) != 4:
        raise ValueError("wrk printed no result:\n" + output[-500:])
    result["requests_per_second"] = float(rate.group(1))
    result["requests"] = int(total.group(1))
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx"] = int(non_2xx.group(1)) if non_2xx else 0
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    result["socket_errors"] = sum(int(n) for n in errors.groups()) if errors else 0
    return result


def probe(url: str, header: str | None) -> tuple[int, str]:
    """(status, content type) of one GET, as wrk will send it."""
    request = urllib.request.Request(url)
    if header:
        name, _, value = header.partition(":")
        request.add_header(name.strip(), value.strip())
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=60) as response:
            response.read()
            return response.status, response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as error:
        return error.code, error.headers.get("Content-Type", "")


def run_wrk(url: str, header: str | None, settings: dict[str, Any]) -> dict[str, Any]:
    command = ["wrk", "--latency", "-t", str(settings["threads"])]
    command += ["-c", str(settings["connections"]), "-d", f"{settings['duration']}s"]
    command += ["--timeout", "10s"]
    if header:
        command += ["-H", header]
    output = subprocess.run(
        [*command, url],
        capture_output=True,
        text=True,
        timeout=settings["duration"] + 60,
        check=True,
    ).stdout
    return parse_wrk(output)


class ServedPortal:
    """gunicorn serving this checkout on 127.0.0.1 (sync workers, DEBUG off, no access log)."""

    def __init__(self, workers: int, environment: dict[str, str]) -> None:
        with socket.socket() as probe_socket:
            probe_socket.bind(("127.0.0.1", 0))
            self.port = probe_socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "nicportal.wsgi:application"]
            + ["--bind", f"127.0.0.1:{self.port}", "--workers", str(workers)]
            + ["--worker-class", "sync", "--log-level", "warning"],
            cwd=portal.REPO,
            env=environment,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit("gunicorn exited while starting")
            try:
                probe(self.url + "/healthz", None)
                return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise SystemExit("gunicorn did not answer within 60 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def prepare_portal(interfaces: int, nics: int) -> dict[str, str]:
    """Fill the benchmark database and return the variables its scenarios use: an API token,
    a session cookie, a node, the deep offset, and the environment gunicorn needs."""
    from bench.api import fill

    portal.configure()
    fill(interfaces, nics)
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.db import connection
    from knox.models import AuthToken

    from inventory.models import Interface, Node

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    user, _ = get_user_model().objects.get_or_create(username="bench-sidebyside")
    AuthToken.objects.filter(user=user).delete()
    _, token = AuthToken.objects.create(user)
    # What django.contrib.auth.login() stores, without a request.
    session = import_module(settings.SESSION_ENGINE).SessionStore()
    session["_auth_user_id"] = str(user.pk)
    session["_auth_user_backend"] = settings.AUTHENTICATION_BACKENDS[0]
    session["_auth_user_hash"] = user.get_session_auth_hash()
    session.create()
    total = Interface.objects.count()
    node = Node.objects.order_by("name")[Node.objects.count() // 2].name
    return {
        "NICPORTAL_API_HEADER": f"Authorization: Token {token}",
        "NICPORTAL_HTML_HEADER": f"Cookie: {settings.SESSION_COOKIE_NAME}={session.session_key}",
        "NODE": node,
        "DEEP_OFFSET": str(max(0, total - 50)),
        "INTERFACES": str(total),
    }


def _shown(path: Path) -> str:
    """The path relative to the checkout when it is inside it (for the report)."""
    try:
        return str(path.resolve().relative_to(portal.REPO))
    except ValueError:
        return str(path)


def self_check_plan(plan: dict[str, Any]) -> dict[str, Any]:
    """The served target against a second served instance with the same paths."""
    served = [name for name, target in plan["targets"].items() if target.get("serve")]
    if len(served) != 1:
        raise SystemExit("--self-check needs exactly one target with serve = true")
    name, twin = served[0], f"{served[0]}-2"
    targets = {name: plan["targets"][name], twin: dict(plan["targets"][name])}
    scenarios = [{**scenario, twin: scenario.get(name)} for scenario in plan["scenarios"]]
    return {**plan, "targets": targets, "scenarios": scenarios}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    rates = [run["requests_per_second"] for run in runs]
    return {
        "runs": len(runs),
        "requests_per_second": round(statistics.median(rates), 1),
        "requests_per_second_range": [min(rates), max(rates)],
        "latency_ms": {
            key: round(statistics.median(run["latency_ms"][key] for run in runs), 2)
            for key in ("p50", "p75", "p90", "p99")
        },
        "non_2xx": sum(run["non_2xx"] for run in runs),
        "socket_errors": sum(run["socket_errors"] for run in runs),
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios", type=Path, default=Path(__file__).with_name("sidebyside.toml")
    )
    parser.add_argument("--interfaces", type=int, default=20000, help="for served targets")
    parser.add_argument("--nics", type=int, default=16)
    parser.add_argument("--allow-remote", action="store_true", help="allow non-loopback targets")
    parser.add_argument(
        "--self-check",
        action="store_true",
        help="compare the served NICPortal with a second served instance on its own paths "
        "(proves the harness where no peer is installed)",
    )
    for key in DEFAULTS:
        parser.add_argument(f"--{key}", type=int, help=f"override settings.{key} of the file")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian package wrk; scripts/bench installs it)")
    overrides = {key: getattr(args, key) for key in DEFAULTS if getattr(args, key) is not None}
    try:
        plan = load_scenarios(args.scenarios, overrides)
    except (ScenarioError, tomllib.TOMLDecodeError) as error:
        raise SystemExit(f"{args.scenarios}: {error}") from error
    if args.self_check:
        plan = self_check_plan(plan)
    settings, targets = plan["settings"], plan["targets"]
    variables = dict(os.environ)
    servers: list[ServedPortal] = []
    try:
        if any(target.get("serve") for target in targets.values()):
            variables.update(prepare_portal(args.interfaces, args.nics))
        endpoints: dict[str, dict[str, Any]] = {}
        for name, target in targets.items():
            if target.get("serve"):
                environment = {**os.environ, "DJANGO_DEBUG": "0"}
                workers = int(target.get("workers", 2))
                if not 1 <= workers <= LIMITS["workers"]:
                    raise ScenarioError(f"targets.{name}.workers must be 1..{LIMITS['workers']}")
                server = ServedPortal(workers, environment)
                servers.append(server)
                endpoints[name] = {
                    "url": server.url,
                    "api_header": variables["NICPORTAL_API_HEADER"],
                    "html_header": variables["NICPORTAL_HTML_HEADER"],
                    "served": f"gunicorn, {workers} sync workers, this checkout",
                }
            else:
                url = expand(target["url"], variables, f"targets.{name}.url").rstrip("/")
                check_loopback(url, args.allow_remote)
                endpoints[name] = {
                    "url": url,
                    "api_header": expand(target.get("api_header", ""), variables, name) or None,
                    "html_header": expand(target.get("html_header", ""), variables, name) or None,
                    "served": target.get("description", "given by url"),
                }
        runs: dict[tuple[str, str], list[dict[str, Any]]] = {}
        skipped: dict[tuple[str, str], str] = {}
        for round_index in range(settings["rounds"]):
            for scenario in plan["scenarios"]:
                for name, endpoint in endpoints.items():
                    path = scenario.get(name)
                    key = (scenario["name"], name)
                    if not isinstance(path, str) or key in skipped:
                        continue
                    url = endpoint["url"] + expand(path, variables, f"{scenario['name']}.{name}")
                    header = endpoint[f"{scenario['kind']}_header"]
                    status, content_type = probe(url, header)
                    if status != 200:
                        skipped[key] = f"GET {path} answered {status}"
                        continue
                    print(f"round {round_index + 1}: {scenario['name']} @ {name}", file=sys.stderr)
                    result = run_wrk(url, header, settings)
                    result.update(path=path, content_type=content_type)
                    runs.setdefault(key, []).append(result)
    except ScenarioError as error:
        raise SystemExit(f"{args.scenarios}: {error}") from error
    finally:
        for server in servers:
            server.stop()
    report: dict[str, Any] = {
        "scenario_file": _shown(args.scenarios),
        "settings": settings,
        "targets": {
            name: endpoint["served"] + f" at {endpoint['url']}"
            for name, endpoint in endpoints.items()
        },
        "interfaces": variables.get("INTERFACES"),
        "scenarios": [],
    }
    for scenario in plan["scenarios"]:
        entry: dict[str, Any] = {"name": scenario["name"], "kind": scenario["kind"], "results": {}}
        for name in endpoints:
            key = (scenario["name"], name)
            if key in runs:
                entry["results"][name] = {"path": runs[key][0]["path"], **summarise(runs[key])}
            elif key in skipped:
                entry["results"][name] = {"skipped": skipped[key]}
        report["scenarios"].append(entry)
    text = json.dumps(report, indent=2)
    if args.json:
        args.json.write_text(text + "\n")
    print(text)
    return report


if __name__ == "__main__":
    main()
