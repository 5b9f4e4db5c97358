"""ctensors.transformers.from_pretrained against the real sidecar (`ctensors serve`, session fixture)
serving a tiny Llama that the CLI encrypted: the transformers side of the integration."""

from __future__ import annotations

import gc
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import Keys, Sidecar, Wire, encrypt, make_tiny_model, short_temp_dir

transformers = pytest.importorskip("transformers")

import ctensors.transformers  # noqa: E402
from ctensors._api import TensorSlice  # noqa: E402

PROMPT = torch.tensor([[1, 2, 3, 4]])


@pytest.fixture(scope="module")
def tiny_model() -> Iterator[Path]:
    root = short_temp_dir("ctt-")
    try:
        yield make_tiny_model(root / "llama")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def encrypted(tiny_model: Path, keys: Keys) -> Path:
    """The tiny Llama encrypted by the CLI (every tensor; config and tokenizer copied; model.sig)."""
    return encrypt(tiny_model, tiny_model.parent / "llama-enc", keys)


def _shm_ranges(prefix: str) -> list[tuple[int, int]]:
    ranges = []
    with open("/proc/self/maps") as f:
        for line in f:
            if prefix in line:
                lo, hi = line.split()[0].split("-")
                ranges.append((int(lo, 16), int(hi, 16)))
    return ranges


def _generate(model) -> torch.Tensor:  # type: ignore[no-untyped-def]
    with torch.no_grad():
        return model.generate(PROMPT, max_new_tokens=20, do_sample=False, min_new_tokens=20)


def test_from_pretrained_generates_like_the_plain_model(sidecar: Sidecar, wire: Wire, tiny_model: Path, encrypted: Path) -> None:
    model = ctensors.transformers.from_pretrained(encrypted, socket=sidecar.socket)
    plain = transformers.AutoModelForCausalLM.from_pretrained(tiny_model)
    assert model.dtype == torch.float32
    expected = _generate(plain)
    assert expected.shape == (1, 24)
    assert torch.equal(_generate(model), expected)
    assert len(wire.ready) == 1  # one resident stream for the whole model
    assert wire.closed == wire.model_ids and len(wire.model_ids) == 1
    # Zero copy: the parameters are views of the (unlinked, still mapped) shared-memory region.
    ranges = _shm_ranges(sidecar.region_prefix)
    for name, param in model.named_parameters():
        assert any(lo <= param.data_ptr() < hi for lo, hi in ranges), name


def test_explicit_dtype_and_model_class(sidecar: Sidecar, tiny_model: Path, encrypted: Path) -> None:
    model = ctensors.transformers.from_pretrained(
        encrypted, socket=sidecar.socket, model_class=transformers.LlamaForCausalLM, dtype=torch.bfloat16
    )
    assert isinstance(model, transformers.LlamaForCausalLM) and model.dtype == torch.bfloat16
    plain = transformers.LlamaForCausalLM.from_pretrained(tiny_model, dtype=torch.bfloat16)
    for (name, p), (pname, q) in zip(model.state_dict().items(), plain.state_dict().items(), strict=True):
        assert name == pname and torch.equal(p, q), name
    # Converted (copied) by transformers: nothing keeps the shared memory mapped.
    gc.collect()
    assert _shm_ranges(sidecar.region_prefix) == []


def test_state_dict_argument_is_refused(tiny_model: Path) -> None:
    with pytest.raises(TypeError, match="state_dict"):
        ctensors.transformers.from_pretrained(tiny_model, state_dict={})


def test_lazy_values_have_the_slice_interface() -> None:
    calls = []

    def load() -> torch.Tensor:
        calls.append(1)
        return torch.arange(6, dtype=torch.float32).reshape(2, 3)

    s = TensorSlice("w", "F32", [2, 3], load)
    assert s.get_shape() == [2, 3] and s.get_dtype() == "F32" and calls == []
    assert torch.equal(s[...], load())
    assert s[1, 2].item() == 5.0
    assert len(calls) == 2  # once for the slice (cached), once for the expected value above


def test_weights_dtype_is_the_floating_dtype_with_most_bytes() -> None:
    from ctensors._api import weights_dtype
    from ctensors._proto import sidecar_pb2 as pb

    def info(dtype: str, size: int) -> pb.TensorInfo:
        return pb.TensorInfo(name=f"{dtype}{size}", dtype=dtype, byte_size=size)

    assert weights_dtype([info("BF16", 100), info("F32", 60), info("F32", 30), info("I64", 1000)]) == torch.bfloat16
    assert weights_dtype([info("I64", 8), info("F4", 10)]) == torch.float32


def test_auto_class_is_resolved_to_the_concrete_class(tiny_model: Path) -> None:
    from ctensors.transformers import _concrete_class

    config = transformers.AutoConfig.from_pretrained(tiny_model)
    assert _concrete_class(transformers.AutoModelForCausalLM, config)[0] is transformers.LlamaForCausalLM
    assert _concrete_class(transformers.AutoModel, config)[0] is transformers.LlamaModel
    assert _concrete_class(transformers.LlamaForCausalLM, config)[0] is transformers.LlamaForCausalLM
    with pytest.raises(ValueError, match="pass model_class"):
        _concrete_class(transformers.AutoModelForImageClassification, config)
