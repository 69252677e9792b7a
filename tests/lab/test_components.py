"""The lab's real components: built from the pinned modules, cached by version, each the release
its go.mod names (the binaries themselves say so)."""

from __future__ import annotations

import json
import subprocess

import pytest

from lab import components
from tests.preflight import skip_or_fail

pytestmark = [pytest.mark.lab]


def built(name: str):
    try:
        return components.binary(name)
    except components.ComponentError as exc:
        skip_or_fail(str(exc))


def test_every_component_pins_one_version_in_its_own_module():
    versions = {name: c.version for name, c in components.COMPONENTS.items()}
    assert versions == {
        "kube-apiserver": "v1.37.2",
        "etcd": "v3.7.3",
        "host-device-v1.2.0": "v1.2.0",
        "host-device-v1.6.2": "v1.6.2",
        "host-local-v1.6.2": "v1.6.2",
        "multus": "v4.2.3",
    }
    for component in components.COMPONENTS.values():
        assert (component.module_dir / "go.sum").read_text().strip(), component.name


def test_the_cache_lives_outside_the_checkout_and_is_keyed_by_version_and_pins():
    component = components.COMPONENTS["host-device-v1.2.0"]
    path = components.cached_path(component, "go1.26.8")
    assert not path.is_relative_to(components.MODULES_DIR.parent.parent)
    assert "v1.2.0-" in str(path)
    assert path != components.cached_path(component, "go1.27.0")


@pytest.mark.parametrize(
    ("release", "highest_cni_version"), [("1.2.0", "1.0.0"), ("1.6.2", "1.1.0")]
)
def test_each_host_device_release_reports_its_own_cni_versions(release, highest_cni_version):
    built(f"host-device-v{release}")
    out = subprocess.run(
        [str(components.host_device_binary(release))],
        env={"CNI_COMMAND": "VERSION"},
        input="",
        capture_output=True,
        text=True,
        check=True,
    )
    assert json.loads(out.stdout)["supportedVersions"][-1] == highest_cni_version


def test_kube_apiserver_and_etcd_are_the_pinned_releases():
    apiserver = subprocess.run(
        [str(built("kube-apiserver")), "--version"], capture_output=True, text=True, check=True
    )
    assert apiserver.stdout.split() == ["Kubernetes", "v1.37.2"]
    etcd = subprocess.run([str(built("etcd")), "--version"], capture_output=True, text=True)
    assert "etcd Version: 3.7.3" in etcd.stdout


def test_multus_is_the_pinned_thin_plugin_release():
    out = subprocess.run([str(built("multus")), "-version"], capture_output=True, text=True)
    assert out.stdout.startswith("multus: version:v4.2.3(clean,released)"), out.stdout
    # The thin plugin speaks CNI: it answers VERSION as every plugin does.
    version = subprocess.run(
        [str(built("multus"))], env={"CNI_COMMAND": "VERSION"}, input="", capture_output=True,
        text=True, check=True,
    )  # fmt: skip
    assert "0.3.1" in json.loads(version.stdout)["supportedVersions"]


def test_an_unknown_host_device_release_is_refused_by_name():
    with pytest.raises(components.ComponentError, match="1.1.1, 1.2.0, 1.6.2"):
        components.host_device_binary("0.9.1")
