"""The default socket rule is written twice, in TypeScript (plugin/src/sidecar-socket.ts: the sidecar
and `ctensors vllm`) and here (ctensors._client.default_socket_path). This asks both, in the same
environment, and compares: a change to one that is not made to the other fails here."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
from conftest import REPO_ROOT

from ctensors._client import default_socket_path

RULE_JS = REPO_ROOT / "plugin" / "dist" / "sidecar-socket.js"

ENVIRONMENTS = [
    {},
    {"CTENSORS_SOCKET": "/srv/ct/s.sock", "XDG_RUNTIME_DIR": "/run/user/7"},
    {"CTENSORS_SOCKET": "relative/s.sock"},
    {"XDG_RUNTIME_DIR": "/run/user/7"},
    {"XDG_RUNTIME_DIR": "/run//user/7/"},
    {"XDG_RUNTIME_DIR": "//run/user/7"},
    {"XDG_RUNTIME_DIR": "/run/user/7/../8"},
    {"XDG_RUNTIME_DIR": "rel/run"},
    {"CTENSORS_SOCKET": "", "XDG_RUNTIME_DIR": ""},
]


def _typescript_default(env: dict[str, str]) -> str:
    if shutil.which("node") is None or not RULE_JS.exists():
        # `npm test` builds the TypeScript first: a missing build is a failure, never a skip.
        pytest.fail(f"{RULE_JS} is not built (npm run build) or node is missing")
    script = f"import({str(RULE_JS.as_uri())!r}).then((m) => process.stdout.write(m.defaultSocketPath()))"
    proc = subprocess.run(["node", "-e", script], env=env, capture_output=True, text=True, timeout=60, check=True)
    return proc.stdout


@pytest.mark.parametrize("overrides", ENVIRONMENTS, ids=lambda e: ",".join(f"{k}={v}" for k, v in e.items()) or "neither")
def test_python_and_typescript_agree_on_the_default_socket(overrides: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("CTENSORS_SOCKET", "XDG_RUNTIME_DIR"):
        monkeypatch.delenv(name, raising=False)
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    assert default_socket_path() == _typescript_default(dict(os.environ))
