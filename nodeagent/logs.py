"""key=value log lines on stderr: grep-able on a node, parseable by any log shipper."""

from __future__ import annotations

import sys
import threading
import time

_write_lock = threading.Lock()


def _quote(value: object) -> str:
    text = "null" if value is None else str(value)
    if text == "" or any(c.isspace() or c in '"=' for c in text):
        text = '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    return text


def log(level: str, event: str, **fields: object) -> None:
    """Write one line: ``ts=... level=... event=... k=v ...``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    parts = [f"ts={stamp}", f"level={level}", f"event={_quote(event)}"]
    parts += [f"{key}={_quote(value)}" for key, value in fields.items()]
    line = " ".join(parts) + "\n"
    with _write_lock:
        try:
            sys.stderr.write(line)
            sys.stderr.flush()
        except (OSError, ValueError):
            # stderr closed (parent gone): logging must never take the agent down.
            pass
