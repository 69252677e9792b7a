"""pytest fixtures that bring the lab up for integration tests.

- `lab` (session): one lab named `pt<pid>` with the built-in layout, up once per session and down
  at the end; yields a lab.handle.LabHandle. The agents' hint URL comes from
  $NICPORTAL_LAB_PORTAL_URL.
- `clean_lab` (function): the same lab after `reset()` (no test pods or NADs, NICs as built).
- `lab_requirements` (session): skips (or fails when NICPORTAL_REQUIRE_SERVICES=1) where the
  machine cannot run a lab: not root, no `ip netns`, no host-device plugin, a component not
  built (`python -m lab build`).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator

import pytest

from lab import components, control
from lab.handle import LabHandle
from lab.state import state_dir


def lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "the lab needs root (network namespaces)"
    if not components.DEBIAN_HOST_DEVICE.is_file():
        return (
            f"no {components.DEBIAN_HOST_DEVICE}"
            " (apt-get install --no-install-recommends containernetworking-plugins)"
        )
    for name in components.COMPONENTS:
        try:
            components.binary(name)
        except components.ComponentError as exc:
            return str(exc)
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False)
    if probe.returncode != 0:
        return "`ip netns` does not work here"
    return None


def require_lab() -> None:
    reason = lab_unavailable_reason()
    if reason is None:
        return
    if os.environ.get("NICPORTAL_REQUIRE_SERVICES") in ("1", "sqlite"):
        pytest.fail(f"lab required but unavailable: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def lab_requirements() -> None:
    require_lab()


@pytest.fixture(scope="session")
def lab(lab_requirements: None) -> Iterator[LabHandle]:
    name = f"pt{os.getpid()}"
    try:
        state = control.up(name, portal_url=os.environ.get("NICPORTAL_LAB_PORTAL_URL"))
    except Exception:
        control.down(name)
        raise
    handle = LabHandle(state)
    try:
        yield handle
    finally:
        handle.close()
        control.down(name)
        shutil.rmtree(state_dir(name), ignore_errors=True)


@pytest.fixture
def clean_lab(lab: LabHandle) -> LabHandle:
    lab.reset()
    return lab
