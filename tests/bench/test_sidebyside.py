"""The side-by-side harness: scenario files, wrk's output, the loopback guard, and one real wrk
run against a small local server (correctness only, no timing)."""

from __future__ import annotations

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from bench import sidebyside
from tests.preflight import skip_or_fail

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000/api/v1/interfaces/?limit=50
  2 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    12.10ms    3.20ms  41.00ms   80.00%
    Req/Sec   331.50     20.10   380.00     70.00%
  Latency Distribution
     50%  850.00us
     75%   13.20ms
     90%   16.00ms
     99%    1.20s \n  6630 requests in 10.01s, 30.11MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:    662.34
Transfer/sec:      3.01MB
"""

SCENARIOS = """
[settings]
duration = 1
rounds = 1

[targets.local]
url = "${LOCAL_URL}"
api_header = "Authorization: Token ${LOCAL_TOKEN}"

[[scenarios]]
name = "answers"
kind = "api"
local = "/ok"

[[scenarios]]
name = "refuses"
kind = "api"
local = "/missing"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "scenarios.toml"
    path.write_text(text)
    return path


def test_it_reads_rate_percentiles_and_errors_from_wrk_output():
    result = sidebyside.parse_wrk(WRK_OUTPUT)
    assert result["requests_per_second"] == 662.34
    assert result["requests"] == 6630
    assert result["latency_ms"] == {"p50": 0.85, "p75": 13.2, "p90": 16.0, "p99": 1200.0}
    assert (result["non_2xx"], result["socket_errors"]) == (4, 3)


def test_it_refuses_wrk_output_without_a_result():
    with pytest.raises(ValueError, match="wrk printed no result"):
        sidebyside.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[settings]\nduration = 600\n", "settings.duration must be an integer from 1 to 60"),
        ("[settings]\nconnections = 0\n", "settings.connections must be an integer from 1 to 64"),
        ('[targets.a]\ndescription = "x"\n', "targets.a: give url"),
        (
            '[targets.a]\nserve = true\n[[scenarios]]\nkind = "api"\na = "/"\n',
            r"scenarios\[0\].name is missing",
        ),
        (
            '[targets.a]\nserve = true\n[[scenarios]]\nname = "n"\nkind = "xml"\na = "/"\n',
            r"scenarios\[0\].kind must be 'api' or 'html'",
        ),
        (
            '[targets.a]\nserve = true\n[[scenarios]]\nname = "n"\nkind = "api"\nb = "/"\n',
            r"scenarios\[0\] gives no path for any target \(a\)",
        ),
    ],
)
def test_it_rejects_a_bad_scenario_file_naming_the_key(tmp_path, text, message):
    if "[targets" not in text:
        text += '[targets.a]\nserve = true\n[[scenarios]]\nname = "n"\nkind = "api"\na = "/"\n'
    with pytest.raises(sidebyside.ScenarioError, match=message):
        sidebyside.load_scenarios(write(tmp_path, text))


def test_the_shipped_scenario_file_is_valid():
    plan = sidebyside.load_scenarios(Path(sidebyside.__file__).with_name("sidebyside.toml"))
    assert set(plan["targets"]) == {"nicportal", "peer"}
    assert all(s.get("nicportal") and s.get("peer") for s in plan["scenarios"])
    twins = sidebyside.self_check_plan(plan)
    assert set(twins["targets"]) == {"nicportal", "nicportal-2"}
    assert all(s["nicportal-2"] == s["nicportal"] for s in twins["scenarios"])


def test_it_names_a_variable_missing_from_the_environment():
    with pytest.raises(sidebyside.ScenarioError, match=r"targets.peer.url: \$\{PEER_URL\}"):
        sidebyside.expand("${PEER_URL}/api", {}, "targets.peer.url")


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://[::1]:8000", "http://localhost"])
def test_it_loads_loopback_targets(url):
    sidebyside.check_loopback(url, allow_remote=False)


def test_it_refuses_a_remote_target_unless_allowed():
    with pytest.raises(sidebyside.ScenarioError, match="--allow-remote"):
        sidebyside.check_loopback("http://192.0.2.10:8000", allow_remote=False)
    sidebyside.check_loopback("http://192.0.2.10:8000", allow_remote=True)


@pytest.fixture
def local_server():
    seen: list[str | None] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def do_GET(self):
            seen.append(self.headers.get("Authorization"))
            status = 200 if self.path == "/ok" else 404
            body = b'{"ok": true}' if status == 200 else b"{}"
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_it_runs_wrk_against_a_target_and_reports_what_it_could_not_load(
    tmp_path, monkeypatch, local_server
):
    if not shutil.which("wrk"):
        skip_or_fail("wrk (Debian package wrk) is not installed")
    url, seen = local_server
    monkeypatch.setenv("LOCAL_URL", url)
    monkeypatch.setenv("LOCAL_TOKEN", "t0ken")
    report = sidebyside.main(["--scenarios", str(write(tmp_path, SCENARIOS))])
    answers, refuses = report["scenarios"]
    result = answers["results"]["local"]
    assert result["runs"] == 1 and result["requests_per_second"] > 0
    assert set(result["latency_ms"]) == {"p50", "p75", "p90", "p99"}
    assert result["non_2xx"] == 0 and result["path"] == "/ok"
    assert refuses["results"]["local"] == {"skipped": "GET /missing answered 404"}
    assert set(seen) == {"Token t0ken"}  # wrk sent the target's header on every request
