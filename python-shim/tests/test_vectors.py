"""The shared test vectors (test/vectors/, written by scripts/gen_vectors.py) replayed from Python:

1. by the reference itself (PyPI `cryptotensors`): it reads every good file to the expected plaintext
   digests and refuses the tampered ones (except where the manifest records that it accepts them:
   the reference has no require-encrypted mode and reads a file stripped of `__encryption__` as plain);
2. by this package, which opens files only through the sidecar: the real sidecar (`ctensors serve`)
   is started for each set of keys the cases use (conftest.start_sidecar), and every case must give the
   manifest's verdict (the same digests, or the same ERR_CT_* code) through `ctensors.load_file`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, Sidecar, require_cli, start_sidecar

import ctensors
from ctensors.errors import CryptoTensorsError

VECTORS = REPO_ROOT / "test" / "vectors"
MANIFEST = json.loads((VECTORS / "manifest.json").read_text(encoding="utf-8"))
CASES: list[dict[str, Any]] = MANIFEST["cases"]


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [c["name"] for c in cases]


def _jwk(rel: str) -> dict[str, str]:
    jwk: dict[str, str] = json.loads((VECTORS / rel).read_text(encoding="utf-8"))
    # The reference takes key dicts by role (enc_key / sign_key) and reads only these members.
    return {k: v for k, v in jwk.items() if k in ("alg", "kid", "jku", "k", "x", "d")}


def _reference_config(case: dict[str, Any]) -> dict[str, Any] | None:
    if not case["keys"] and not case["trust"]:
        return None
    return {"enc_key": _jwk(case["keys"][0]), "sign_key": _jwk(case["trust"][0])}


def _reference_read(case: dict[str, Any]) -> dict[str, dict[str, Any]]:
    import cryptotensors

    out: dict[str, dict[str, Any]] = {}
    with cryptotensors.safe_open(str(VECTORS / case["file"]), framework="np", config=_reference_config(case)) as f:
        encrypted = set(json.loads((f.reserved_metadata() or {}).get("__encryption__", "{}")))
        for name in f.keys():
            t = f.get_tensor(name)
            out[name] = {
                "shape": list(t.shape),
                "encrypted": name in encrypted,
                "sha256": hashlib.sha256(np.ascontiguousarray(t).tobytes()).hexdigest(),
            }
    return out


@pytest.fixture(autouse=True)
def _no_reference_env_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRYPTOTENSOR_KEYS", raising=False)


def test_the_vectors_include_good_and_tampered_files() -> None:
    good = [c for c in CASES if c["expect"]["ok"]]
    bad = [c for c in CASES if not c["expect"]["ok"]]
    assert {"v1-aes256gcm", "v2-aes128gcm", "v2-chacha20poly1305"} <= {c["name"] for c in good}
    assert len(bad) >= 10


@pytest.mark.parametrize("case", [c for c in CASES if c["expect"]["ok"]], ids=_ids([c for c in CASES if c["expect"]["ok"]]))
def test_reference_reads_the_good_files(case: dict[str, Any]) -> None:
    got = _reference_read(case)
    want = {n: {k: t[k] for k in ("shape", "encrypted", "sha256")} for n, t in case["expect"]["tensors"].items()}
    assert got == want


REFUSED = [c for c in CASES if not c["reference"]["accepts"]]


@pytest.mark.parametrize("case", REFUSED, ids=_ids(REFUSED))
def test_reference_refuses_the_tampered_files(case: dict[str, Any]) -> None:
    assert not case["expect"]["ok"]
    with pytest.raises(Exception) as info:  # the reference raises SafetensorError and others
        _reference_read(case)
    # For the reason the manifest names (a substring of the reference's message), not for another one.
    assert case["reference"]["error"] in str(info.value), info.value


ACCEPTED_BAD = [c for c in CASES if c["reference"]["accepts"] and not c["expect"]["ok"]]


@pytest.mark.parametrize("case", ACCEPTED_BAD, ids=_ids(ACCEPTED_BAD))
def test_reference_accepts_what_the_manifest_says_it_accepts(case: dict[str, Any]) -> None:
    """Known gaps of the reference (the manifest notes why); ctensors refuses these files."""
    assert case["reference"].get("note")
    assert _reference_read(case)


# --- through this package and the real sidecar ------------------------------------------------------------


def _group(case: dict[str, Any]) -> tuple[tuple[str, ...], tuple[str, ...], bool]:
    return tuple(case["keys"]), tuple(case["trust"]), bool(case["require_encrypted"])


class Sidecars:
    """One `ctensors serve` per (keys, trust, require-encrypted) combination, started on first use."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.running: dict[tuple[tuple[str, ...], tuple[str, ...], bool], Sidecar] = {}

    def socket_for(self, case: dict[str, Any]) -> str:
        group = _group(case)
        if group not in self.running:
            keys, trust, require = group
            args: list[str | Path] = []
            for k in keys:
                args += ["--key", VECTORS / k]
            for t in trust:
                args += ["--trust", VECTORS / t]
            # The sidecar is strict by default (signed, fully encrypted models only); a case read without
            # downgrade protection needs the explicit opt-out.
            if not require:
                args.append("--allow-plaintext")
            elif not trust:
                # A strict sidecar without a trusted signer would refuse every model, so `ctensors serve`
                # does not start; a signer the case's file was not signed by keeps the verdict the same.
                args += ["--trust", VECTORS / "keys/other-sign.pub.jwk"]
            env = {k: v for k, v in os.environ.items() if k not in ("CTENSORS_REGO_PYTHON", "CRYPTOTENSOR_KEYS")}
            self.running[group] = start_sidecar(self.root, *args, env=env)
        return self.running[group].socket

    def stop(self) -> None:
        for sidecar in self.running.values():
            sidecar.stop()


@pytest.fixture(scope="module")
def sidecars() -> Iterator[Sidecars]:
    require_cli()
    root = Path(tempfile.mkdtemp(prefix="ctv-", dir="/tmp"))
    s = Sidecars(root)
    try:
        yield s
    finally:
        s.stop()
        shutil.rmtree(root, ignore_errors=True)


def _torch_bytes(t: torch.Tensor) -> bytes:
    if t.numel() == 0:
        return b""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


@pytest.mark.parametrize("case", CASES, ids=_ids(CASES))
def test_sidecar_and_client_give_the_manifest_verdict(sidecars: Sidecars, case: dict[str, Any]) -> None:
    socket = sidecars.socket_for(case)
    path = VECTORS / case["file"]
    expect = case["expect"]
    if not expect["ok"]:
        with pytest.raises(CryptoTensorsError) as info:
            ctensors.load_file(path, socket=socket)
        assert info.value.code == expect["error"], info.value.message
        return
    loaded = ctensors.load_file(path, socket=socket)
    got = {n: {"shape": list(t.shape), "sha256": hashlib.sha256(_torch_bytes(t)).hexdigest()} for n, t in loaded.items()}
    want = {n: {"shape": t["shape"], "sha256": t["sha256"]} for n, t in expect["tensors"].items()}
    assert got == want
