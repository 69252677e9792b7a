"""Which CNI plugin binaries the node has, and which host-device release answers there.

The NAD builder needs the highest cniVersion host-device accepts and whether it is a release
with the `failed to move link file exists` bug (< v1.5.0). Running a binary costs milliseconds
and binaries change only on upgrades, so answers are cached per (path, inode, size, mtime).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import threading

DEFAULT_BIN_DIRS = ("/opt/cni/bin", "/var/snap/microk8s/current/opt/cni/bin", "/usr/lib/cni")
PROBE_TIMEOUT_SECONDS = 3.0
_VERSION = re.compile(r"\bversion\s+(v?\d+\.\d+\.\d+[^\s,]*)", re.IGNORECASE)


def parse_version_text(text: str) -> str | None:
    """``CNI host-device plugin v1.6.2`` / ``... version v1.1.1`` -> the version; else None.

    Debian's build prints ``version unknown``: that is no version.
    """
    match = _VERSION.search(text)
    if match:
        return match.group(1)
    match = re.search(r"\bplugin\s+(v\d+\.\d+\.\d+\S*)", text)
    return match.group(1) if match else None


def _run(path: str, args: list[str], env: dict[str, str]) -> str:
    try:
        result = subprocess.run(
            [path, *args],
            input=b'{"cniVersion":"0.1.0"}' if not args else b"",
            capture_output=True,
            timeout=PROBE_TIMEOUT_SECONDS,
            env=env,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return (result.stdout + b"\n" + result.stderr).decode("utf-8", errors="replace")


def probe_host_device(path: str) -> tuple[str | None, list[str]]:
    """Ask one host-device binary for its release (``--version``) and its supportedVersions."""
    base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
    version = parse_version_text(_run(path, ["--version"], base_env))
    supported: list[str] = []
    output = _run(path, [], {**base_env, "CNI_COMMAND": "VERSION"})
    for line in output.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            answer = json.loads(line)
        except ValueError:
            continue
        versions = answer.get("supportedVersions") if isinstance(answer, dict) else None
        if isinstance(versions, list):
            supported = [str(v) for v in versions]
            break
    return version, supported


class CniProbe:
    """Reports the CNI bin dirs that exist; re-runs host-device only when its file changed."""

    def __init__(self, bin_dirs: list[str] | tuple[str, ...] = DEFAULT_BIN_DIRS) -> None:
        self.bin_dirs = list(bin_dirs)
        self._cache: dict[str, tuple[tuple, tuple[str | None, list[str]]]] = {}
        self._lock = threading.Lock()
        self.probe_count = 0  # how many binaries were actually run; tests check the cache

    def _host_device(self, path: str) -> tuple[str | None, list[str]] | None:
        try:
            stat = os.stat(path)  # follows MicroK8s' host-device -> cni multi-call symlink
        except OSError:
            return None
        if not os.access(path, os.X_OK) or not os.path.isfile(path):
            return None
        key = (stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns)
        with self._lock:
            cached = self._cache.get(path)
            if cached and cached[0] == key:
                return cached[1]
            answer = probe_host_device(path)
            self.probe_count += 1
            self._cache[path] = (key, answer)
            return answer

    def facts(self) -> dict:
        bin_dirs = []
        first = None
        for directory in self.bin_dirs:
            if not os.path.isdir(directory):
                continue
            path = os.path.join(directory, "host-device")
            answer = self._host_device(path)
            version, supported = answer if answer else (None, [])
            bin_dirs.append(
                {
                    "path": directory,
                    "host_device": answer is not None,
                    "host_device_version": version,
                    "supported_versions": supported,
                }
            )
            if answer is not None and first is None:
                first = {"path": path, "version": version, "supported_versions": supported}
        return {"bin_dirs": bin_dirs, "host_device": first}
