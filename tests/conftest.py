"""Shared fixtures. The suite runs on whatever DATABASE_URL says (PostgreSQL in CI, SQLite
otherwise); CI sets NICPORTAL_REQUIRE_SERVICES=1 so that a missing PostgreSQL, Redis, Chromium,
host-device plugin or netns support fails the run instead of skipping tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["lab.pytest_plugin"]

ARTIFACTS = Path(os.environ.get("NICPORTAL_ARTIFACTS", Path(__file__).parent.parent / "artifacts"))


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    # Debian's Chromium, never a downloaded browser (no internet); flags from docs/MACHINE.md.
    return {
        **browser_type_launch_args,
        "executable_path": os.environ.get("NICPORTAL_CHROMIUM", "/usr/bin/chromium"),
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
        ],
    }
