"""End to end with the real CLI and the session's sidecar (conftest.py): plain transformers refuses a
folder `ctensors encrypt` wrote instead of loading ciphertext as weights, ctensors.transformers
loads it, `ctensors decrypt` gives a folder plain transformers loads again; safetensors' `framework=`
and `device=` arguments against the real sidecar."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from conftest import Keys, Sidecar, Wire, bitwise_equal, cli, encrypt, make_tiny_model, short_temp_dir
from safetensors.torch import load_file as st_load_file

import ctensors
import ctensors.transformers
from ctensors._target import InvalidArgumentError

pytestmark = pytest.mark.e2e

PROMPT = torch.tensor([[1, 2, 3, 4]])


@dataclass
class Models:
    plain: Path  # a tiny Llama folder (make_tiny_model.py)
    enc: Path  # `ctensors encrypt` of it with the session's keys


@pytest.fixture(scope="module")
def models(keys: Keys) -> Iterator[Models]:
    root = short_temp_dir("ctce-")
    try:
        plain = make_tiny_model(root / "plain")
        yield Models(plain, encrypt(plain, root / "enc", keys))
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _plain_tensors(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(st_load_file(shard))
    return tensors


def test_plain_transformers_refuses_an_encrypted_folder(models: Models) -> None:
    config = json.loads((models.enc / "config.json").read_text())
    assert "ctensors.transformers.from_pretrained" in config["transformers_weights"]
    for load in (transformers.AutoModelForCausalLM.from_pretrained, transformers.LlamaForCausalLM.from_pretrained):
        with pytest.raises(ValueError, match=r"This model is encrypted: load it with ctensors\.transformers\.from_pretrained"):
            load(models.enc)
    # The rest of the folder stays usable with plain transformers: the config itself still loads.
    assert transformers.AutoConfig.from_pretrained(models.enc).model_type == "llama"


def test_ctensors_loads_the_marked_folder_and_decrypt_unmarks_it(sidecar: Sidecar, models: Models, keys: Keys, tmp_path: Path) -> None:
    model = ctensors.transformers.from_pretrained(models.enc, socket=sidecar.socket)
    assert model.config.name_or_path == str(models.enc)
    out = tmp_path / "dec"
    cli("decrypt", models.enc, out, "--key", keys.enc, "--trust", keys.sign_pub)
    assert (out / "config.json").read_bytes() == (models.plain / "config.json").read_bytes()
    plain = transformers.AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        want = plain.generate(PROMPT, max_new_tokens=10, do_sample=False)
        got = model.generate(PROMPT, max_new_tokens=10, do_sample=False)
    assert torch.equal(got, want)


def test_numpy_framework_and_cpu_device(sidecar: Sidecar, models: Models) -> None:
    expected = _plain_tensors(models.plain)
    with ctensors.safe_open(models.enc, framework="numpy", device="cpu", socket=sidecar.socket) as f:
        got = f.get_tensor("lm_head.weight")
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, expected["lm_head.weight"].numpy())
    loaded = ctensors.load_file(models.enc, device="cpu", socket=sidecar.socket)
    assert all(bitwise_equal(loaded[n], t) for n, t in expected.items())


def test_revision_for_a_local_folder_is_refused(sidecar: Sidecar, models: Models, wire: Wire) -> None:
    with pytest.raises(InvalidArgumentError, match="local path"):
        ctensors.load_file(models.enc, revision="main", socket=sidecar.socket)
    assert wire.opened == []
