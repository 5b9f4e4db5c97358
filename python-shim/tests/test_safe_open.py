"""safe_open against the fake sidecar: the safetensors-like surface."""

from __future__ import annotations

import pytest
import torch
from conftest import bitwise_equal, sample_tensors
from fake_sidecar import FakeModel

import ctensors

SOURCE = "/models/sample"


@pytest.fixture
def sidecar(fake_sidecar):  # type: ignore[no-untyped-def]
    return fake_sidecar({SOURCE: FakeModel(sample_tensors(), metadata={"format": "pt", "k": "v"})})


def test_keys_metadata_and_tensors(sidecar) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    with ctensors.safe_open(SOURCE, framework="pt", socket=sidecar.socket) as f:
        assert f.keys() == sorted(tensors)
        assert f.offset_keys() == list(tensors)
        assert f.metadata() == {"format": "pt", "k": "v"}
        for name in f.keys():
            assert bitwise_equal(f.get_tensor(name), tensors[name]), name
    assert sidecar.closed_models == ["m1"]


def test_no_metadata_is_none(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({SOURCE: FakeModel({"x": torch.ones(1)}, metadata={})})
    with ctensors.safe_open(SOURCE, socket=sidecar.socket) as f:
        assert f.metadata() is None


def test_get_slice(sidecar) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    with ctensors.safe_open(SOURCE, socket=sidecar.socket) as f:
        s = f.get_slice("big")
        assert s.get_shape() == [10, 10] and s.get_dtype() == "F32"
        assert "not loaded" in repr(s) and sidecar.ready_paths == []  # nothing loaded yet
        assert bitwise_equal(s[...], tensors["big"])
        assert bitwise_equal(s[2:5, ::3], tensors["big"][2:5, ::3])
        assert bitwise_equal(s[-1], tensors["big"][-1])
        assert len(sidecar.ready_paths) == 1  # loaded once
        b = f.get_slice("bf16")
        assert b.get_dtype() == "BF16" and bitwise_equal(b[:, 1], tensors["bf16"][:, 1])


def test_tensors_outlive_the_handle(sidecar) -> None:  # type: ignore[no-untyped-def]
    with ctensors.safe_open(SOURCE, socket=sidecar.socket) as f:
        t = f.get_tensor("f64")
    assert bitwise_equal(t, sample_tensors()["f64"])


def test_unknown_name_and_closed_handle(sidecar) -> None:  # type: ignore[no-untyped-def]
    f = ctensors.safe_open(SOURCE, socket=sidecar.socket)
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
    assert sidecar.closed_models == ["m1"]


def test_pytorch_and_numpy_only(sidecar) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match="use 'pt' or 'numpy'"):
        ctensors.safe_open(SOURCE, "tf", socket=sidecar.socket)
    with pytest.raises(TypeError):
        ctensors.safe_open(SOURCE, "pt", "cpu", sidecar.socket)  # type: ignore[misc]  # socket is keyword-only


def test_open_error_closes_the_channel(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({})
    with pytest.raises(ctensors.CryptoTensorsError):
        ctensors.safe_open("/nowhere", socket=sidecar.socket)


def test_error_inside_with_block_is_not_masked(sidecar) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RuntimeError, match="boom"), ctensors.safe_open(SOURCE, socket=sidecar.socket):
        sidecar.stop()  # closing will fail too
        raise RuntimeError("boom")
