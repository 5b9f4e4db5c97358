"""Client sessions against the real sidecar (`ctensors serve`, session fixture): the models a client
opens belong to its session (the Session call it holds open), so the sidecar closes them, and zeroes
their data keys, as soon as the client goes away, even when it is killed (SIGKILL) between OpenModel
and CloseModel. A live client keeps its models however long it holds them. A sidecar without
sessions (UNIMPLEMENTED) is still served, without one.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Keys, Sidecar, encrypt, sample_tensors, short_temp_dir
from fake_sidecar import MODEL_ID, FakeSidecar
from safetensors.torch import save_file

from ctensors._client import SidecarClient

CHILD = Path(__file__).with_name("e2e_child.py")


@pytest.fixture(scope="module")
def model(keys: Keys) -> Iterator[Path]:
    """An encrypted file no other test module opens (so that Health's open models are this module's)."""
    root = short_temp_dir("ctss-")
    try:
        save_file(sample_tensors(), str(root / "session.safetensors"), metadata={"format": "pt"})
        yield encrypt(root / "session.safetensors", root / "session.enc.safetensors", keys)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _open_hang(sidecar: Sidecar, model: Path) -> subprocess.Popen[str]:
    """A child process holding `model` open through safe_open (e2e_child.py open-hang), once it says so."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), sidecar.socket, "open-hang", str(model)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("OPENED"):
        proc.kill()
        raise AssertionError(f"the child did not open the model: {line!r} {proc.communicate()[1]}")
    return proc


def _kill(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(30) == -signal.SIGKILL


def test_a_client_killed_after_open_model_releases_the_model(sidecar: Sidecar, model: Path) -> None:
    mark = sidecar.mark()
    proc = _open_hang(sidecar, model)
    try:
        assert sidecar.holds(model, timeout=0)
    finally:
        _kill(proc)
    assert not sidecar.holds(model)
    ended = sidecar.wait_for_event("session.ended", since=mark, why="client gone", released_models=1)
    closed = sidecar.wait_for_event("model.closed", since=mark, source=str(model.resolve()))
    assert set(ended) >= {"session", "why", "released_models"}
    assert closed["model_id"].startswith("m-")


def test_a_live_client_keeps_its_model_while_another_holder_is_killed(sidecar: Sidecar, model: Path) -> None:
    live = _open_hang(sidecar, model)
    try:
        doomed = _open_hang(sidecar, model)
        _kill(doomed)
        # Held for as long as the live client lives: `holds` polls for 3 s for a release that must not come.
        assert sidecar.holds(model, timeout=3.0)
    finally:
        _kill(live)
    assert not sidecar.holds(model)


def test_closing_the_client_without_close_model_releases_the_model(sidecar: Sidecar, model: Path) -> None:
    client = SidecarClient(sidecar.socket)
    try:
        client.open_model(str(model))
        assert sidecar.holds(model, timeout=0)
    finally:
        client.close()  # no close_model: the session's end releases the model
    assert not sidecar.holds(model)


def test_close_model_in_the_session_releases_the_model(sidecar: Sidecar, model: Path) -> None:
    with SidecarClient(sidecar.socket) as client:
        opened = client.open_model(str(model))
        client.open_model(str(model))
        client.close_model(opened.model_id)
        assert sidecar.holds(model, timeout=0)  # one reference of the session left
        client.close_model(opened.model_id)
        assert not sidecar.holds(model)


def test_a_sidecar_without_sessions_is_served_without_one(short_tmp: Path) -> None:
    fake = FakeSidecar(str(short_tmp / "fake.sock"), sample_tensors()).start()  # no Session method: UNIMPLEMENTED
    try:
        with SidecarClient(fake.socket) as client:
            opened = client.open_model("/any/model.safetensors")
            assert opened.model_id == MODEL_ID
            client.close_model(opened.model_id)
        assert fake.closed_models == [MODEL_ID]
    finally:
        fake.stop()
