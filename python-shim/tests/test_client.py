"""Socket resolution and token-file checks (no sidecar needed)."""

from __future__ import annotations

import os
import socket as socketlib
from pathlib import Path

import pytest

import ctensors
from ctensors._client import SidecarClient, read_token, resolve_socket_path
from ctensors.errors import CryptoTensorsError, SidecarUnavailableError


def test_default_socket_env_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTENSORS_SOCKET", "/run/x/s.sock")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert ctensors.default_socket_path() == "/run/x/s.sock"


def test_default_socket_xdg(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/7")
    assert ctensors.default_socket_path() == "/run/user/7/ctensors/sidecar.sock"


def test_default_socket_tmp(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    assert ctensors.default_socket_path() == f"/tmp/ctensors-{os.getuid()}/sidecar.sock"


def test_empty_env_values_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CTENSORS_SOCKET", "")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "")
    assert ctensors.default_socket_path() == f"/tmp/ctensors-{os.getuid()}/sidecar.sock"


def test_explicit_socket_is_made_absolute(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CTENSORS_SOCKET", "/elsewhere.sock")
    assert resolve_socket_path("rel.sock") == str(tmp_path / "rel.sock")
    assert resolve_socket_path(tmp_path / "p.sock") == str(tmp_path / "p.sock")
    assert resolve_socket_path(None) == "/elsewhere.sock"
    with pytest.raises(ValueError):
        resolve_socket_path("")


def _write_token(sock: Path, content: str, mode: int) -> Path:
    path = Path(str(sock) + ".token")
    path.write_text(content)
    path.chmod(mode)
    return path


def test_read_token(tmp_path: Path) -> None:
    _write_token(tmp_path / "s.sock", "ab12CD\n", 0o600)
    assert read_token(str(tmp_path / "s.sock")) == "ab12CD"


def test_token_missing(tmp_path: Path) -> None:
    with pytest.raises(CryptoTensorsError) as info:
        read_token(str(tmp_path / "s.sock"))
    assert info.value.code == "ERR_CT_UNAUTHENTICATED"
    assert "no token file" in info.value.message and "s.sock.token" in info.value.message


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660])
def test_token_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    _write_token(tmp_path / "s.sock", "ab12", mode)
    with pytest.raises(CryptoTensorsError) as info:
        read_token(str(tmp_path / "s.sock"))
    assert info.value.code == "ERR_CT_UNAUTHENTICATED"
    assert f"{mode:04o}" in info.value.message and "0600" in info.value.message


@pytest.mark.parametrize("content", ["", "  \n", "not-hex!", "ab cd"])
def test_token_malformed(tmp_path: Path, content: str) -> None:
    _write_token(tmp_path / "s.sock", content, 0o600)
    with pytest.raises(CryptoTensorsError, match="does not hold a hex token"):
        read_token(str(tmp_path / "s.sock"))


def test_token_not_a_regular_file(tmp_path: Path) -> None:
    os.mkdir(str(tmp_path / "s.sock") + ".token", 0o700)
    with pytest.raises(CryptoTensorsError) as info:
        read_token(str(tmp_path / "s.sock"))
    assert info.value.code == "ERR_CT_UNAUTHENTICATED"


def test_token_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A mode-000 file is readable by root (CI runs as root), so the EACCES a non-owner gets is
    # produced by patching os.open for this one path.
    _write_token(tmp_path / "s.sock", "ab", 0o000)
    real_open = os.open
    token_path = str(tmp_path / "s.sock") + ".token"

    def deny(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        if str(path) == token_path:
            raise PermissionError(13, "Permission denied", path)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", deny)
    with pytest.raises(CryptoTensorsError, match="permission denied") as info:
        read_token(str(tmp_path / "s.sock"))
    assert info.value.code == "ERR_CT_UNAUTHENTICATED"


def test_missing_socket_is_a_clear_error(tmp_path: Path) -> None:
    sock = tmp_path / "nobody.sock"
    with pytest.raises(SidecarUnavailableError) as info:
        ctensors.load_file(tmp_path / "model", socket=sock)
    err = info.value
    assert err.code == "ERR_CT_SIDECAR_UNAVAILABLE" and err.socket == str(sock)
    assert str(sock) in str(err) and "Is the sidecar running?" in str(err) and "CTENSORS_SOCKET" in str(err)


def test_default_socket_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("CTENSORS_SOCKET", str(tmp_path / "env.sock"))
    with pytest.raises(SidecarUnavailableError) as info:
        ctensors.safe_open(tmp_path / "model")
    assert info.value.socket == str(tmp_path / "env.sock")


def test_stale_socket_nobody_listening(short_tmp: Path) -> None:
    sock = short_tmp / "stale.sock"
    s = socketlib.socket(socketlib.AF_UNIX)
    s.bind(str(sock))
    s.close()  # the file stays, nothing listens
    _write_token(sock, "ab", 0o600)
    with SidecarClient(sock) as client, pytest.raises(SidecarUnavailableError) as info:
        client.health()
    assert info.value.socket == str(sock)
