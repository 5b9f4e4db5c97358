"""Which sidecars this package works with: the same ctensors release line (major.minor).

The npm package `ctensors` (the sidecar) and this Python package share one version number and one
protocol (proto/ctensors/sidecar/v1); releases of one line (0.1.x) talk to each other. The client asks
the sidecar's Health once, before opening its first model, and refuses another line with a message
that says which package to upgrade.
"""

from __future__ import annotations

import re

from ._version import __version__
from .errors import UNSUPPORTED, CryptoTensorsError

_RELEASE = re.compile(r"^(\d+)\.(\d+)\.\d+")


def _line(version: str) -> tuple[int, int] | None:
    m = _RELEASE.match(version)
    return (int(m.group(1)), int(m.group(2))) if m else None


def check_sidecar_version(sidecar_version: str, *, socket: str, mine: str = __version__) -> None:
    """Raises CryptoTensorsError (ERR_CT_UNSUPPORTED) when the sidecar is of another release line.

    A version that is not a release number (a development build) is not compared.
    """
    theirs, ours = _line(sidecar_version), _line(mine)
    if theirs is None or ours is None or theirs == ours:
        return
    if theirs > ours:
        fix = f"upgrade this Python package: pip install -U 'ctensors=={theirs[0]}.{theirs[1]}.*'"
    else:
        fix = f"upgrade the sidecar: npm install ctensors@{ours[0]}.{ours[1]} (then restart `ctensors serve`)"
    raise CryptoTensorsError(
        UNSUPPORTED,
        f"the sidecar at {socket} is ctensors {sidecar_version} but this Python package is ctensors {mine}; "
        f"both must be of the same release line ({ours[0]}.{ours[1]}.x): {fix}",
    )
