"""The OpenAPI schema is a true contract: schemathesis (4.x CLI) fuzzes every operation of the
running API with a real token and finds no server error, no undocumented status or content type
and no response that violates the schema.

Choices, each one deliberate:
- NUL characters are generated too: every query parameter and body field refuses them with a
  400 naming the field (nicportal.middleware, nicportal.parsers).
- For POST reservations/, reservations/{id}/extend/, nads/render|validate/ and
  reservation-requests/ (and its preview/), a 400 also counts as an accepted answer to "valid"
  data: JSON Schema cannot say "in the future", "an id that exists" or "a label selector", and
  those requests get a 400 naming the field (see the reservation and request tests); a request
  that cannot be met is a documented 409.
- For GET interfaces/ too: its `cursor` is an opaque token that only a `next` or `previous` link
  hands out, and any other string is a 400 naming `cursor`.
- For GET pods/{namespace}/{name}/diagnosis/ too: its `cluster` must name a registered cluster
  ("a cluster that exists"), any other is a 400 naming `cluster`.
- nads/apply/ is left out: it creates objects in a Kubernetes API (tested with KMock elsewhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.api.builders import make_free_interface, make_node, make_people, token_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

LENIENT_OPERATIONS = (
    r"^/api/v1/(reservations/|reservations/\{id\}/extend/|nads/(render|validate)/"
    r"|reservation-requests/|reservation-requests/preview/)$"
)
CONFIG = f"""
[[operations]]
# One include with both regexes: separate include keys are OR-ed (any POST would match).
include-path-regex = '{LENIENT_OPERATIONS}'
include-method-regex = '^POST$'
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409"]

[[operations]]
include-name = "GET /api/v1/interfaces/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403"]

[[operations]]
include-name = "GET /api/v1/pods/{{namespace}}/{{name}}/diagnosis/"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404"]
"""


def schemathesis_cli() -> str:
    found = Path(sys.executable).with_name("st")
    return str(found) if found.exists() else (shutil.which("st") or "st")


def test_the_api_honours_its_openapi_schema(live_server, tmp_path, settings):
    settings.KUBECONFIG = str(tmp_path / "no-cluster")  # publishing annotations just logs
    people = make_people()
    node = make_node("node-a")
    for index in range(3):
        make_free_interface(node, f"ens{index}f0")
    token = token_for(people.owner)
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)

    result = subprocess.run(
        [
            schemathesis_cli(),
            "--config-file", str(config),
            "run", f"{live_server.url}/api/schema/",
            "--checks", "all",
            "--workers", "1",
            "--max-examples", "20",
            "--request-timeout", "10",
            "--exclude-path-regex", "/nads/apply/",
            # A fixed seed keeps CI reproducible; explore with NICPORTAL_SCHEMATHESIS_SEED=<n>
            # (a random seed once found a 500 in the history time filters).
            "--seed", os.environ.get("NICPORTAL_SCHEMATHESIS_SEED", "20261128"),
            "-H", f"Authorization: Token {token}",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
