"""The Hugging Face / safetensors conventions of the Python API, against the real sidecar (`ctensors
serve`, conftest's session fixture) serving files the CLI encrypted: `framework=` and `device=` as
safetensors takes them, `revision=` as Hub libraries take it (a repo served by the repo's development
Hub, `ctensors dev-hub`), and the transformers loader's `torch_dtype=`, `config.name_or_path` and load
report. `wire` records what the client sends, e.g. the model sources it opens.
(test_conventions_e2e.py covers plain transformers against encrypted folders.)"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import (
    Keys,
    Sidecar,
    Wire,
    bitwise_equal,
    cli,
    encrypt,
    make_tiny_model,
    sample_tensors,
    short_temp_dir,
    start_dev_hub,
    start_sidecar,
    stop_process,
)
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save_file

import ctensors
import ctensors.transformers
from ctensors._api import model_source
from ctensors._target import DeviceUnavailableError, InvalidArgumentError
from ctensors.errors import CryptoTensorsError

TOKEN = "hf_conventions_token"
REPO = "acme/tiny"
BRANCH = "v1.0"  # the branch `ctensors push --revision` puts the model on


@dataclass
class Models:
    root: Path
    sample: Path  # sample_tensors(), encrypted
    tiny_plain: Path  # a tiny Llama folder (make_tiny_model.py)
    tiny: Path  # tiny_plain, encrypted
    tiny_extra: Path  # tiny_plain plus a tensor the model does not have, encrypted


def _plain(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(st_load_file(shard))
    return tensors


def _with_extra_tensor(src: Path, dst: Path) -> Path:
    """A copy of model folder `src` whose first shard (and index) also holds `extra.unexpected`."""
    shutil.copytree(src, dst)
    index_path = dst / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shard = sorted(set(index["weight_map"].values()))[0]
    tensors = st_load_file(dst / shard) | {"extra.unexpected": torch.zeros(2)}
    save_file(tensors, str(dst / shard), metadata={"format": "pt"})
    index["weight_map"]["extra.unexpected"] = shard
    index_path.write_text(json.dumps(index))
    return dst


@pytest.fixture(scope="module")
def models(keys: Keys) -> Iterator[Models]:
    root = short_temp_dir("cthf-")
    try:
        save_file(sample_tensors(), str(root / "sample.safetensors"), metadata={"format": "pt"})
        tiny_plain = make_tiny_model(root / "tiny-plain")
        yield Models(
            root,
            encrypt(root / "sample.safetensors", root / "sample.enc.safetensors", keys),
            tiny_plain,
            encrypt(tiny_plain, root / "tiny", keys),
            encrypt(_with_extra_tensor(tiny_plain, root / "extra-plain"), root / "tiny-extra", keys),
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def hub_sidecar(keys: Keys, models: Models) -> Iterator[Sidecar]:
    """A sidecar whose Hub is the development Hub, where REPO holds models.tiny on branch BRANCH only."""
    root = short_temp_dir("cthfh-")
    hub: subprocess.Popen[bytes] | None = None
    server: Sidecar | None = None
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    try:
        hub, url = start_dev_hub(root, TOKEN, base)
        env = {**base, "HF_ENDPOINT": url, "HF_TOKEN": TOKEN, "HF_HOME": str(root / "hf-home"), "HF_HUB_CACHE": str(root / "cache")}
        cli("push", models.tiny, REPO, "--revision", BRANCH, env=env)
        server = start_sidecar(root, "--key", keys.enc, "--trust", keys.sign_pub, env=env)
        yield server
    finally:
        if server is not None:
            server.stop()
        stop_process(hub)
        shutil.rmtree(root, ignore_errors=True)


# --- framework and device ------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_device_cpu_is_accepted_like_safetensors(sidecar: Sidecar, models: Models, device: object) -> None:
    tensors = sample_tensors()
    with ctensors.safe_open(models.sample, framework="pt", device=device, socket=sidecar.socket) as f:  # type: ignore[arg-type]
        assert bitwise_equal(f.get_tensor("bf16"), tensors["bf16"])
    loaded = ctensors.load_file(models.sample, device=device, socket=sidecar.socket)  # type: ignore[arg-type]
    assert all(bitwise_equal(loaded[n], t) for n, t in tensors.items())
    positional = ctensors.load_file(models.sample, "cpu", socket=sidecar.socket)  # as safetensors.torch.load_file(path, "cpu")
    assert sorted(positional) == sorted(tensors)


@pytest.mark.parametrize("framework", ["numpy", "np"])
def test_framework_numpy_gives_arrays(sidecar: Sidecar, models: Models, framework: str) -> None:
    tensors = sample_tensors()
    with ctensors.safe_open(models.sample, framework, socket=sidecar.socket) as f:
        for name in ("f32", "f16", "i64", "u8", "bool", "scalar", "empty"):
            got = f.get_tensor(name)
            assert isinstance(got, np.ndarray), name
            np.testing.assert_array_equal(got, tensors[name].numpy())
        assert isinstance(f.get_slice("big")[2:4], np.ndarray)
        streamed = dict(f.stream(["f32", "i32"]))
        assert all(isinstance(a, np.ndarray) for a in streamed.values())
        np.testing.assert_array_equal(streamed["i32"], tensors["i32"].numpy())
        with pytest.raises(InvalidArgumentError, match="numpy has no type") as info:
            f.get_tensor("bf16")
        assert info.value.code == "ERR_CT_USAGE"


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"framework": "tf"}, "framework 'tf' is not supported"),
        ({"device": "meta"}, "device 'meta' is not supported"),
        ({"device": "bogus"}, "device 'bogus' is invalid"),
        ({"device": True}, "device True is invalid"),
        ({"framework": "numpy", "device": "cuda:0"}, "CPU only|CUDA is not available"),
    ],
)
def test_bad_framework_or_device_is_refused_before_the_sidecar_is_asked(
    sidecar: Sidecar, models: Models, wire: Wire, kwargs: dict[str, object], match: str
) -> None:
    with pytest.raises(CryptoTensorsError, match=match):
        ctensors.safe_open(models.sample, socket=sidecar.socket, **kwargs)  # type: ignore[arg-type]
    if "device" in kwargs and "framework" not in kwargs:
        with pytest.raises(CryptoTensorsError, match=match):
            ctensors.load_file(models.sample, device=kwargs["device"], socket=sidecar.socket)  # type: ignore[arg-type]
    assert wire.opened == []


def test_invalid_arguments_are_value_errors_with_the_usage_code(sidecar: Sidecar, models: Models) -> None:
    with pytest.raises(ValueError) as info:  # what safetensors users catch
        ctensors.safe_open(models.sample, device="meta", socket=sidecar.socket)
    assert isinstance(info.value, CryptoTensorsError) and info.value.code == "ERR_CT_USAGE"


@pytest.mark.skipif(torch.cuda.is_available(), reason="covered by test_cuda_device_copies_through_pinned_memory")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", 0])
def test_cuda_without_cuda_is_a_clear_error(sidecar: Sidecar, models: Models, wire: Wire, device: object) -> None:
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available") as info:
        ctensors.load_file(models.sample, device=device, socket=sidecar.socket)  # type: ignore[arg-type]
    assert info.value.code == "ERR_CT_UNSUPPORTED" and isinstance(info.value, RuntimeError)
    with pytest.raises(DeviceUnavailableError):
        ctensors.safe_open(models.sample, device=device, socket=sidecar.socket)  # type: ignore[arg-type]
    assert wire.opened == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU; without one the clear error is tested")
def test_cuda_device_copies_through_pinned_memory(sidecar: Sidecar, models: Models) -> None:
    tensors = sample_tensors()
    loaded = ctensors.load_file(models.sample, device="cuda:0", socket=sidecar.socket)
    assert sorted(loaded) == sorted(tensors)
    for name, t in tensors.items():
        assert loaded[name].device == torch.device("cuda", 0), name
        assert bitwise_equal(loaded[name].cpu(), t), name
    with ctensors.safe_open(models.sample, device=0, socket=sidecar.socket) as f:
        assert f.get_tensor("f32").device.type == "cuda"
        assert all(t.device.type == "cuda" for _, t in f.stream(copy=False))


# --- revision ------------------------------------------------------------------------------------


def test_revision_is_added_to_a_repo_id(hub_sidecar: Sidecar, models: Models, wire: Wire) -> None:
    names = sorted(_plain(models.tiny_plain))
    assert sorted(ctensors.load_file(REPO, revision=BRANCH, socket=hub_sidecar.socket)) == names
    with ctensors.safe_open(REPO, revision=BRANCH, socket=hub_sidecar.socket) as f:
        assert f.keys() == names
    with ctensors.safe_open(f"{REPO}@{BRANCH}", revision=BRANCH, socket=hub_sidecar.socket) as f:  # the same twice is fine
        assert f.keys() == names
    assert wire.opened == [f"{REPO}@{BRANCH}"] * 3


@pytest.mark.parametrize(
    ("path", "revision", "match"),
    [
        ("acme/tiny@v1", "v2", "names revision 'v1' but revision='v2'"),
        ("acme/tiny", "bad rev", "not a branch, tag or commit name"),
        (".", "main", "local path"),
    ],
)
def test_revision_that_cannot_apply_is_refused(path: str, revision: str, match: str) -> None:
    with pytest.raises(InvalidArgumentError, match=match):
        model_source(path, revision)


def test_no_revision_keeps_the_source() -> None:
    assert model_source("acme/tiny") == "acme/tiny"
    assert model_source("acme/tiny@refs/pr/1") == "acme/tiny@refs/pr/1"
    assert model_source("no/such/folder") == str(Path("no/such/folder").resolve())  # three parts: a path


# --- transformers ---------------------------------------------------------------------------------


def test_torch_dtype_is_honoured_with_a_deprecation_warning(sidecar: Sidecar, models: Models) -> None:
    with pytest.warns(FutureWarning, match="torch_dtype"):
        model = ctensors.transformers.from_pretrained(models.tiny, socket=sidecar.socket, torch_dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    with pytest.raises(InvalidArgumentError, match="disagree"):
        ctensors.transformers.from_pretrained(models.tiny, socket=sidecar.socket, dtype=torch.float16, torch_dtype=torch.bfloat16)


def test_name_or_path_is_the_path_given(sidecar: Sidecar, models: Models) -> None:
    assert "transformers_weights" in json.loads((models.tiny / "config.json").read_text())  # the folder's mark
    model = ctensors.transformers.from_pretrained(str(models.tiny), socket=sidecar.socket)
    assert model.config.name_or_path == str(models.tiny) == model.config._name_or_path
    assert "transformers_weights" not in model.config.to_dict()


def test_revision_reaches_the_sidecar_from_transformers(hub_sidecar: Sidecar, wire: Wire) -> None:
    model = ctensors.transformers.from_pretrained(REPO, revision=BRANCH, socket=hub_sidecar.socket)
    assert wire.opened == [f"{REPO}@{BRANCH}"]
    assert model.config.name_or_path == REPO  # as transformers: the repo id, the revision apart


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_load_report_names_the_model(sidecar: Sidecar, models: Models) -> None:
    logger = logging.getLogger("transformers.modeling_utils")
    records = _Records()
    logger.addHandler(records)
    try:
        ctensors.transformers.from_pretrained(models.tiny_extra, socket=sidecar.socket)  # its extra tensor makes transformers report
    finally:
        logger.removeHandler(records)
    reports = [m for m in records.messages if "LOAD REPORT" in m]
    assert reports and f"from: {models.tiny_extra} (decrypted by the ctensors sidecar)" in reports[0]
    assert "from: None" not in reports[0]
    assert logger.filters == []  # the filter is gone after the call
