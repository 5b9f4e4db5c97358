"""safe_open against the real sidecar (`ctensors serve`, session fixture): the safetensors-like surface,
on files the CLI encrypted."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import Keys, Sidecar, Wire, bitwise_equal, encrypt, file_order, sample_tensors, short_temp_dir, start_sidecar
from safetensors.torch import save_file

import ctensors


@dataclass
class Models:
    sample: Path  # sample_tensors(), metadata {"format": "pt", "k": "v"}
    no_metadata: Path  # {"x": [1.0]}, no metadata


@pytest.fixture(scope="module")
def models(keys: Keys) -> Iterator[Models]:
    root = short_temp_dir("ctso-")
    try:
        save_file(sample_tensors(), str(root / "sample.safetensors"), metadata={"format": "pt", "k": "v"})
        save_file({"x": torch.ones(1)}, str(root / "bare.safetensors"))
        yield Models(
            encrypt(root / "sample.safetensors", root / "sample.enc.safetensors", keys),
            encrypt(root / "bare.safetensors", root / "bare.enc.safetensors", keys),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_keys_metadata_and_tensors(sidecar: Sidecar, models: Models, wire: Wire) -> None:
    tensors = sample_tensors()
    with ctensors.safe_open(models.sample, framework="pt", socket=sidecar.socket) as f:
        assert f.keys() == sorted(tensors)
        assert f.offset_keys() == file_order(models.sample)
        assert f.metadata() == {"format": "pt", "k": "v"}
        for name in f.keys():
            assert bitwise_equal(f.get_tensor(name), tensors[name]), name
    assert wire.closed == wire.model_ids and len(wire.model_ids) == 1
    assert not sidecar.holds(models.sample)


def test_no_metadata_is_none(sidecar: Sidecar, models: Models) -> None:
    with ctensors.safe_open(models.no_metadata, socket=sidecar.socket) as f:
        assert f.metadata() is None


def test_get_slice(sidecar: Sidecar, models: Models, wire: Wire) -> None:
    tensors = sample_tensors()
    with ctensors.safe_open(models.sample, socket=sidecar.socket) as f:
        s = f.get_slice("big")
        assert s.get_shape() == [10, 10] and s.get_dtype() == "F32"
        assert "not loaded" in repr(s) and wire.ready == []  # nothing loaded yet
        assert bitwise_equal(s[...], tensors["big"])
        assert bitwise_equal(s[2:5, ::3], tensors["big"][2:5, ::3])
        assert bitwise_equal(s[-1], tensors["big"][-1])
        assert len(wire.ready) == 1  # loaded once
        b = f.get_slice("bf16")
        assert b.get_dtype() == "BF16" and bitwise_equal(b[:, 1], tensors["bf16"][:, 1])


def test_tensors_outlive_the_handle(sidecar: Sidecar, models: Models) -> None:
    with ctensors.safe_open(models.sample, socket=sidecar.socket) as f:
        t = f.get_tensor("f64")
    assert bitwise_equal(t, sample_tensors()["f64"])


def test_unknown_name_and_closed_handle(sidecar: Sidecar, models: Models, wire: Wire) -> None:
    f = ctensors.safe_open(models.sample, socket=sidecar.socket)
    with pytest.raises(KeyError, match="nope"):
        f.get_tensor("nope")
    with pytest.raises(KeyError):
        f.get_slice("nope")
    with pytest.raises(KeyError):
        f.stream(["f32", "nope"])
    f.close()
    f.close()  # idempotent
    with pytest.raises(ValueError, match="closed"):
        f.get_tensor("f32")
    assert wire.closed == wire.model_ids and len(wire.model_ids) == 1


def test_pytorch_and_numpy_only(sidecar: Sidecar, models: Models) -> None:
    with pytest.raises(ValueError, match="use 'pt' or 'numpy'"):
        ctensors.safe_open(models.sample, "tf", socket=sidecar.socket)
    with pytest.raises(TypeError):
        ctensors.safe_open(models.sample, "pt", "cpu", sidecar.socket)  # type: ignore[misc]  # socket is keyword-only


def test_open_error_closes_the_channel(sidecar: Sidecar) -> None:
    with pytest.raises(ctensors.CryptoTensorsError):
        ctensors.safe_open("/nowhere", socket=sidecar.socket)


def test_error_inside_with_block_is_not_masked(keys: Keys, models: Models, short_tmp: Path) -> None:
    own = start_sidecar(short_tmp, "--key", keys.enc, "--trust", keys.sign_pub)  # stopped below: not the shared one
    try:
        with pytest.raises(RuntimeError, match="boom"), ctensors.safe_open(models.sample, socket=own.socket):
            own.stop()  # closing will fail too
            raise RuntimeError("boom")
    finally:
        own.stop()
