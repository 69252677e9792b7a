"""A server process (gunicorn imports nicportal.wsgi in every worker) freezes what start-up
allocated, so that Python's full garbage collections, which run inside whichever request
crosses their threshold, do not walk the ~150,000 objects of modules, classes and views."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROBE = """
import gc, json
before = len(gc.get_objects())
import nicportal.wsgi
import inventory.api.views  # a view module: imported by the URLconf the server loaded
print(json.dumps({"frozen": gc.get_freeze_count(), "walked": len(gc.get_objects()),
                  "application": callable(nicportal.wsgi.application)}))
"""


def test_the_wsgi_module_freezes_the_start_up_heap():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    found = json.loads(out.stdout.strip().splitlines()[-1])
    assert found["application"]
    # Most of the process's objects are frozen; a full collection walks only the rest.
    assert found["frozen"] > 50_000, found
    assert found["walked"] < found["frozen"] / 5, found
