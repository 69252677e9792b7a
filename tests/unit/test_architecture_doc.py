"""docs/ARCHITECTURE.md's import graph is the one the code has: regenerate it with
`.venv/bin/python scripts/import-graph` when a floor starts or stops importing another."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_drawn_import_graph_is_the_codes():
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    drawn = re.search(r"\(`\.venv/bin/python scripts/import-graph`\):\n\n```\n(.*?)```", text, re.S)
    assert drawn, "docs/ARCHITECTURE.md has no import-graph block"
    generated = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "import-graph")],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    ).stdout
    assert drawn.group(1) == generated
    assert "floor 1\n  rules      -> (nothing of inventory)" in generated
