"""End to end with the real CLI and sidecar (test_e2e.py's fixture): plain transformers refuses a
folder `ctensors encrypt` wrote instead of loading ciphertext as weights, ctensors.transformers
loads it, `ctensors decrypt` gives a folder plain transformers loads again; safetensors' `framework=`
and `device=` arguments against the real sidecar."""

# ruff: noqa: F811 -- the tests take the imported fixture `env` as their argument, as pytest wants

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import ctensors
import ctensors.transformers
import numpy as np
import pytest
import torch
import transformers
from conftest import bitwise_equal
from ctensors._target import InvalidArgumentError
from test_e2e import CLI, Env, _plain_tensors, env  # noqa: F401 -- pytest finds the shared module fixture by this name

pytestmark = pytest.mark.e2e

PROMPT = torch.tensor([[1, 2, 3, 4]])


def test_plain_transformers_refuses_an_encrypted_folder(env: Env) -> None:
    config = json.loads((env.enc_a / "config.json").read_text())
    assert "ctensors.transformers.from_pretrained" in config["transformers_weights"]
    for load in (transformers.AutoModelForCausalLM.from_pretrained, transformers.LlamaForCausalLM.from_pretrained):
        with pytest.raises(ValueError, match=r"This model is encrypted: load it with ctensors\.transformers\.from_pretrained"):
            load(env.enc_a)
    # The rest of the folder stays usable with plain transformers: the config itself still loads.
    assert transformers.AutoConfig.from_pretrained(env.enc_a).model_type == "llama"


def test_ctensors_loads_the_marked_folder_and_decrypt_unmarks_it(env: Env, tmp_path: Path) -> None:
    model = ctensors.transformers.from_pretrained(env.enc_a, socket=env.socket)
    assert model.config.name_or_path == str(env.enc_a)
    out = tmp_path / "dec"
    keys = env.root / "keys"
    subprocess.run(
        ["node", str(CLI), "decrypt", str(env.enc_a), str(out), "--key", str(keys / "enc.jwk"), "--trust", str(keys / "sign.pub.jwk")],
        check=True,
        capture_output=True,
        timeout=300,
    )
    assert (out / "config.json").read_bytes() == (env.plain_a / "config.json").read_bytes()
    plain = transformers.AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        want = plain.generate(PROMPT, max_new_tokens=10, do_sample=False)
        got = model.generate(PROMPT, max_new_tokens=10, do_sample=False)
    assert torch.equal(got, want)


def test_numpy_framework_and_cpu_device(env: Env) -> None:
    expected = _plain_tensors(env.plain_a)
    with ctensors.safe_open(env.enc_a, framework="numpy", device="cpu", socket=env.socket) as f:
        got = f.get_tensor("lm_head.weight")
        assert isinstance(got, np.ndarray)
        np.testing.assert_array_equal(got, expected["lm_head.weight"].numpy())
    loaded = ctensors.load_file(env.enc_a, device="cpu", socket=env.socket)
    assert all(bitwise_equal(loaded[n], t) for n, t in expected.items())


def test_revision_for_a_local_folder_is_refused(env: Env) -> None:
    with pytest.raises(InvalidArgumentError, match="local path"):
        ctensors.load_file(env.enc_a, revision="main", socket=env.socket)
