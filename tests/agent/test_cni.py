"""CNI plugin discovery: bin dirs, host-device's versions, and the cache of answers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nodeagent.cni import CniProbe, parse_version_text
from tests.preflight import skip_or_fail

FAKE_PLUGIN = """#!/bin/sh
echo run >> "{log}"
if [ "$1" = "--version" ]; then
  echo "CNI host-device plugin v1.4.1"
  echo "CNI protocol versions supported: 0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0"
  exit 0
fi
if [ "$CNI_COMMAND" = "VERSION" ]; then
  echo '{{"cniVersion":"1.0.0","supportedVersions":["0.3.1","0.4.0","1.0.0"]}}'
fi
"""


def fake_host_device(directory: Path, log: Path) -> Path:
    directory.mkdir(parents=True)
    plugin = directory / "host-device"
    plugin.write_text(FAKE_PLUGIN.format(log=log))
    plugin.chmod(0o755)
    return plugin


def runs(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def test_it_reports_the_host_device_release_and_its_cni_versions(tmp_path):
    bin_dir = tmp_path / "opt-cni-bin"
    fake_host_device(bin_dir, tmp_path / "log")
    facts = CniProbe([str(tmp_path / "absent"), str(bin_dir)]).facts()
    assert facts["bin_dirs"] == [
        {
            "path": str(bin_dir),
            "host_device": True,
            "host_device_version": "v1.4.1",
            "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
        }
    ]
    assert facts["host_device"] == {
        "path": str(bin_dir / "host-device"),
        "version": "v1.4.1",
        "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
    }


def test_it_reports_a_bin_dir_without_host_device(tmp_path):
    (tmp_path / "bin").mkdir()
    facts = CniProbe([str(tmp_path / "bin")]).facts()
    assert facts["bin_dirs"][0]["host_device"] is False
    assert facts["host_device"] is None


def test_it_runs_the_plugin_again_only_when_the_binary_changes(tmp_path):
    log = tmp_path / "log"
    plugin = fake_host_device(tmp_path / "bin", log)
    probe = CniProbe([str(tmp_path / "bin")])
    probe.facts()
    first = runs(log)
    assert first == 2  # --version and CNI_COMMAND=VERSION
    probe.facts()
    probe.facts()
    assert runs(log) == first
    stat = plugin.stat()
    os.utime(plugin, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    probe.facts()
    assert runs(log) == first + 2


def test_it_follows_a_microk8s_style_symlink_to_a_multicall_binary(tmp_path):
    real = fake_host_device(tmp_path / "real", tmp_path / "log")
    (tmp_path / "bin").mkdir()
    os.symlink(real, tmp_path / "bin" / "host-device")
    facts = CniProbe([str(tmp_path / "bin")]).facts()
    assert facts["host_device"]["version"] == "v1.4.1"


def test_it_reads_debians_real_host_device_plugin():
    if not os.path.exists("/usr/lib/cni/host-device"):
        skip_or_fail("needs Debian's host-device plugin (containernetworking-plugins)")
    facts = CniProbe(["/usr/lib/cni"]).facts()
    assert facts["host_device"]["path"] == "/usr/lib/cni/host-device"
    assert facts["host_device"]["version"] is None  # Debian's build says "version unknown"
    assert "1.0.0" in facts["host_device"]["supported_versions"]
    assert "1.1.0" not in facts["host_device"]["supported_versions"]


@pytest.mark.parametrize(
    ("text", "version"),
    [
        ("CNI host-device plugin v1.6.2\nCNI protocol versions supported: 0.1.0", "v1.6.2"),
        ("CNI host-device plugin version v1.1.1", "v1.1.1"),
        ("CNI host-device plugin version unknown\nCNI protocol versions supported: 1.0.0", None),
        ("", None),
    ],
)
def test_it_parses_the_plugins_version_text(text, version):
    assert parse_version_text(text) == version
