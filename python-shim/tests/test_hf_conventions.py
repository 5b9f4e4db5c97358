"""The Hugging Face / safetensors conventions of the Python API, against the fake sidecar:
`framework=` and `device=` as safetensors takes them, `revision=` as Hub libraries take it, and the
transformers loader's `torch_dtype=`, `config.name_or_path` and load report.
(test_conventions_e2e.py runs the same against the real sidecar and the real CLI.)"""

from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ctensors
import numpy as np
import pytest
import torch
from conftest import REPO_ROOT, bitwise_equal, sample_tensors
from ctensors._api import model_source
from ctensors._target import DeviceUnavailableError, InvalidArgumentError
from ctensors.errors import CryptoTensorsError
from fake_sidecar import FakeModel
from safetensors.torch import load_file as st_load_file

SOURCE = "/models/sample"


@pytest.fixture
def sidecar(fake_sidecar):  # type: ignore[no-untyped-def]
    return fake_sidecar({SOURCE: FakeModel(sample_tensors())})


# --- framework and device ------------------------------------------------------------------------


@pytest.mark.parametrize("device", ["cpu", torch.device("cpu")])
def test_device_cpu_is_accepted_like_safetensors(sidecar, device: object) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    with ctensors.safe_open(SOURCE, framework="pt", device=device, socket=sidecar.socket) as f:  # type: ignore[arg-type]
        assert bitwise_equal(f.get_tensor("bf16"), tensors["bf16"])
    loaded = ctensors.load_file(SOURCE, device=device, socket=sidecar.socket)  # type: ignore[arg-type]
    assert all(bitwise_equal(loaded[n], t) for n, t in tensors.items())
    positional = ctensors.load_file(SOURCE, "cpu", socket=sidecar.socket)  # as safetensors.torch.load_file(path, "cpu")
    assert sorted(positional) == sorted(tensors)


@pytest.mark.parametrize("framework", ["numpy", "np"])
def test_framework_numpy_gives_arrays(sidecar, framework: str) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    with ctensors.safe_open(SOURCE, framework, socket=sidecar.socket) as f:
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
def test_bad_framework_or_device_is_refused_before_the_sidecar_is_asked(sidecar, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(CryptoTensorsError, match=match):
        ctensors.safe_open(SOURCE, socket=sidecar.socket, **kwargs)
    if "device" in kwargs and "framework" not in kwargs:
        with pytest.raises(CryptoTensorsError, match=match):
            ctensors.load_file(SOURCE, device=kwargs["device"], socket=sidecar.socket)
    assert sidecar.open_calls == []


def test_invalid_arguments_are_value_errors_with_the_usage_code(sidecar) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError) as info:  # what safetensors users catch
        ctensors.safe_open(SOURCE, device="meta", socket=sidecar.socket)
    assert isinstance(info.value, CryptoTensorsError) and info.value.code == "ERR_CT_USAGE"


@pytest.mark.skipif(torch.cuda.is_available(), reason="covered by test_cuda_device_copies_through_pinned_memory")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", 0])
def test_cuda_without_cuda_is_a_clear_error(sidecar, device: object) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DeviceUnavailableError, match="CUDA is not available") as info:
        ctensors.load_file(SOURCE, device=device, socket=sidecar.socket)  # type: ignore[arg-type]
    assert info.value.code == "ERR_CT_UNSUPPORTED" and isinstance(info.value, RuntimeError)
    with pytest.raises(DeviceUnavailableError):
        ctensors.safe_open(SOURCE, device=device, socket=sidecar.socket)  # type: ignore[arg-type]
    assert sidecar.open_calls == []


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU; without one the clear error is tested")
def test_cuda_device_copies_through_pinned_memory(sidecar) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    loaded = ctensors.load_file(SOURCE, device="cuda:0", socket=sidecar.socket)
    assert sorted(loaded) == sorted(tensors)
    for name, t in tensors.items():
        assert loaded[name].device == torch.device("cuda", 0), name
        assert bitwise_equal(loaded[name].cpu(), t), name
    with ctensors.safe_open(SOURCE, device=0, socket=sidecar.socket) as f:
        assert f.get_tensor("f32").device.type == "cuda"
        assert all(t.device.type == "cuda" for _, t in f.stream(copy=False))


# --- revision ------------------------------------------------------------------------------------


def test_revision_is_added_to_a_repo_id(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({"acme/tiny@v1.0": FakeModel({"x": torch.ones(2)})})
    assert sorted(ctensors.load_file("acme/tiny", revision="v1.0", socket=sidecar.socket)) == ["x"]
    with ctensors.safe_open("acme/tiny", revision="v1.0", socket=sidecar.socket) as f:
        assert f.keys() == ["x"]
    with ctensors.safe_open("acme/tiny@v1.0", revision="v1.0", socket=sidecar.socket) as f:  # the same twice is fine
        assert f.keys() == ["x"]
    assert sidecar.open_calls == ["acme/tiny@v1.0"] * 3


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

transformers = pytest.importorskip("transformers")
import ctensors.transformers


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    out = tmp_path_factory.mktemp("tiny") / "llama"
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "make_tiny_model.py"), str(out)], check=True, capture_output=True)
    yield out


def _plain(folder: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(folder.glob("*.safetensors")):
        tensors.update(st_load_file(shard))
    return tensors


def test_torch_dtype_is_honoured_with_a_deprecation_warning(fake_sidecar, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({str(tiny_model): FakeModel(_plain(tiny_model))})
    with pytest.warns(FutureWarning, match="torch_dtype"):
        model = ctensors.transformers.from_pretrained(tiny_model, socket=sidecar.socket, torch_dtype=torch.bfloat16)
    assert model.dtype == torch.bfloat16
    with pytest.raises(InvalidArgumentError, match="disagree"):
        ctensors.transformers.from_pretrained(tiny_model, socket=sidecar.socket, dtype=torch.float16, torch_dtype=torch.bfloat16)


def test_name_or_path_is_the_path_given(fake_sidecar, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({str(tiny_model): FakeModel(_plain(tiny_model))})
    model = ctensors.transformers.from_pretrained(str(tiny_model), socket=sidecar.socket)
    assert model.config.name_or_path == str(tiny_model) == model.config._name_or_path
    assert "transformers_weights" not in model.config.to_dict()


def test_revision_reaches_the_sidecar_from_transformers(fake_sidecar, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({"acme/tiny@abc": FakeModel(_plain(tiny_model), local_path=str(tiny_model))})
    model = ctensors.transformers.from_pretrained("acme/tiny", revision="abc", socket=sidecar.socket)
    assert sidecar.open_calls == ["acme/tiny@abc"]
    assert model.config.name_or_path == "acme/tiny"  # as transformers: the repo id, the revision apart


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_load_report_names_the_model(fake_sidecar, tiny_model: Path) -> None:  # type: ignore[no-untyped-def]
    tensors = _plain(tiny_model)
    tensors["extra.unexpected"] = torch.zeros(2)  # makes transformers print its load report
    sidecar = fake_sidecar({str(tiny_model): FakeModel(tensors)})
    logger = logging.getLogger("transformers.modeling_utils")
    records = _Records()
    logger.addHandler(records)
    try:
        ctensors.transformers.from_pretrained(tiny_model, socket=sidecar.socket)
    finally:
        logger.removeHandler(records)
    reports = [m for m in records.messages if "LOAD REPORT" in m]
    assert reports and f"from: {tiny_model} (decrypted by the ctensors sidecar)" in reports[0]
    assert "from: None" not in reports[0]
    assert logger.filters == []  # the filter is gone after the call
