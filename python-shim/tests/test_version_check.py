"""The client refuses a sidecar of another release line, naming the package to upgrade, before it
opens a model; the same line (and a development build) passes. The real sidecar reports the
package's one version (test/packaging checks that it is this package's __version__)."""

from __future__ import annotations

import pytest

import ctensors
from ctensors._compat import check_sidecar_version
from ctensors.errors import CryptoTensorsError


def test_same_line_and_development_builds_pass() -> None:
    check_sidecar_version("0.1.7", socket="/s", mine="0.1.0")
    check_sidecar_version(ctensors.__version__, socket="/s")
    check_sidecar_version("fake", socket="/s", mine="0.1.0")


def test_an_older_sidecar_says_to_upgrade_the_sidecar() -> None:
    with pytest.raises(CryptoTensorsError) as info:
        check_sidecar_version("0.1.3", socket="/run/ct.sock", mine="0.2.0")
    assert info.value.code == "ERR_CT_UNSUPPORTED"
    assert "the sidecar at /run/ct.sock is ctensors 0.1.3 but this Python package is ctensors 0.2.0" in info.value.message
    assert info.value.message.endswith("upgrade the sidecar: npm install ctensors@0.2 (then restart `ctensors serve`)")


def test_a_newer_sidecar_says_to_upgrade_this_package() -> None:
    with pytest.raises(CryptoTensorsError) as info:
        check_sidecar_version("1.0.0", socket="/s", mine="0.2.5")
    assert info.value.message.endswith("upgrade this Python package: pip install -U 'ctensors==1.0.*'")


def test_the_version_is_exported() -> None:
    assert ctensors.__version__ == ctensors._version.__version__
    assert "__version__" in ctensors.__all__
