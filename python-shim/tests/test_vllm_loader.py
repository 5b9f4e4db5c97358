"""The vLLM loader's own logic, without vLLM: extra-config parsing, the model source, streaming
from the real sidecar (`ctensors serve`, session fixture), the missing-weights check, sidecar errors, the encrypted-file guard, and
that `import ctensors.vllm` imports no vLLM. The loader inside real vLLM is tested by
python-shim/tests_vllm (npm run test:vllm, part of npm test).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import torch
from conftest import Keys, Sidecar, Wire, bitwise_equal, encrypt, short_temp_dir, tamper_tensor_bytes
from safetensors.torch import save_file

from ctensors.errors import CryptoTensorsError, SidecarUnavailableError
from ctensors.vllm import (
    MIN_VLLM_VERSION,
    EncryptedWeightsError,
    ExtraConfigError,
    LoaderConfig,
    MissingWeightsError,
    UnsupportedVllmError,
    check_vllm_version,
    is_cryptotensors_file,
)
from ctensors.vllm._guard import refuse_encrypted
from ctensors.vllm._weights import CheckpointWeights, check_loaded

SOURCE = "/models/llama-enc"
MIB = 1 << 20


def _tensors() -> dict[str, torch.Tensor]:
    """1.75 MiB, in file order (safetensors puts float32 before bfloat16): two of the sidecar's
    smallest streaming windows (1 MiB)."""
    g = torch.Generator().manual_seed(3)
    return {
        "model.embed_tokens.weight": torch.randn(1024, 256, generator=g),
        "model.layers.0.self_attn.q_proj.weight": torch.randn(256, 256, generator=g),
        "model.norm.weight": torch.randn(256, generator=g),
        "lm_head.weight": torch.randn(1024, 256, generator=g).to(torch.bfloat16),
    }


@dataclass
class Checkpoints:
    good: str  # _tensors(), encrypted by the CLI
    tampered: str  # the same with one bit of lm_head.weight's ciphertext flipped


@pytest.fixture(scope="module")
def checkpoints(keys: Keys) -> Iterator[Checkpoints]:
    root = short_temp_dir("ctvl-")
    try:
        save_file(_tensors(), str(root / "model.safetensors"), metadata={"format": "pt"})
        good = encrypt(root / "model.safetensors", root / "model.enc.safetensors", keys)
        yield Checkpoints(str(good), str(tamper_tensor_bytes(good, root / "tampered.enc.safetensors", "lm_head.weight")))
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- extra config ----------------------------------------------------------------------------------


def test_defaults() -> None:
    for empty in (None, {}, ""):
        cfg = LoaderConfig.parse(empty)
        assert cfg == LoaderConfig()
        assert (cfg.mode, cfg.copy, cfg.strict, cfg.socket) == ("streaming", "auto", True, None)
    assert LoaderConfig.parse({"copy": True}).copy is True
    assert LoaderConfig.parse({"copy": "auto"}).copy == "auto"


def test_every_key() -> None:
    cfg = LoaderConfig.parse(
        {
            "source": "org/name",
            "revision": "v1",
            "socket": "/run/ct.sock",
            "mode": "resident",
            "copy": False,
            "window_bytes": 1 << 20,
            "window_count": 3,
            "strict": False,
        }
    )
    assert cfg == LoaderConfig("org/name", "v1", "/run/ct.sock", "resident", False, 1 << 20, 3, False)


def test_json_string_as_vllm_cli_gives_it() -> None:
    assert LoaderConfig.parse('{"socket": "/s.sock"}').socket == "/s.sock"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sokcet": "/s"}, "unknown key(s) ['sokcet']"),
        ({"mode": "lazy"}, "mode must be one of ['streaming', 'resident']"),
        ({"copy": "yes"}, 'copy must be "auto", true or false'),
        ({"copy": 1}, 'copy must be "auto", true or false'),
        ({"window_bytes": -1}, "window_bytes must be a non-negative integer"),
        ({"window_count": 1.5}, "window_count must be a non-negative integer"),
        ({"window_count": True}, "window_count must be a non-negative integer"),
        ({"socket": ""}, "socket must be a non-empty string"),
        ({"source": 7}, "source must be a non-empty string"),
        ("{not json", "not valid JSON"),
        ("[1]", "must be a JSON object"),
        (["socket"], "must be a JSON object"),
    ],
)
def test_bad_extra_config_is_a_clear_error(extra: object, message: str) -> None:
    with pytest.raises(ExtraConfigError) as info:
        LoaderConfig.parse(extra)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_source_defaults_to_vllm_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = LoaderConfig()
    # a local folder (as vLLM's --model) is sent absolute
    monkeypatch.chdir(tmp_path)
    (tmp_path / "enc").mkdir()
    assert cfg.model_source("enc") == str(tmp_path / "enc")
    assert cfg.model_source("./enc") == str(tmp_path / "enc")
    assert cfg.model_source(str(tmp_path / "enc"), "main") == str(tmp_path / "enc")  # revision: not for folders
    # a repo id passes through, with vLLM's --revision
    assert cfg.model_source("org/name") == "org/name"
    assert cfg.model_source("org/name", "abc123") == "org/name@abc123"
    assert cfg.model_source("org/name@v2", "abc123") == "org/name@v2"


def test_explicit_source_and_revision() -> None:
    assert LoaderConfig(source="org/enc").model_source("org/skeleton", "r1") == "org/enc"  # --revision is --model's
    assert LoaderConfig(source="org/enc", revision="r2").model_source("x") == "org/enc@r2"
    assert LoaderConfig(source="/abs/enc").model_source("org/skeleton") == "/abs/enc"
    with pytest.raises(ExtraConfigError, match="revision 'r2' given for the local folder"):
        LoaderConfig(source="/abs/enc", revision="r2").model_source("x")
    with pytest.raises(ExtraConfigError, match="no model source"):
        LoaderConfig().model_source("")


# --- streaming from the sidecar ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{}, {"copy": True}, {"copy": False}, {"mode": "resident"}, {"window_bytes": MIB, "window_count": 1}],
    ids=["streaming-auto", "streaming-copy", "streaming-views", "resident", "window-1x1MiB"],
)
def test_weights_are_yielded_in_file_order(sidecar: Sidecar, checkpoints: Checkpoints, wire: Wire, extra: dict[str, object]) -> None:
    tensors = _tensors()
    cfg = LoaderConfig.parse({"socket": sidecar.socket, **extra})
    seen = []
    with CheckpointWeights(checkpoints.good, cfg) as ckpt:
        assert ckpt.names == list(tensors)
        assert ckpt.total_bytes == sum(t.numel() * t.element_size() for t in tensors.values())
        for name, t in ckpt.weights():
            # what a vLLM weight_loader does: copy into the parameter right away
            param = torch.empty_like(t)
            param.copy_(t)
            seen.append((name, param))
        assert ckpt.yielded == set(tensors)
    assert [n for n, _ in seen] == list(tensors)
    for name, t in seen:
        assert bitwise_equal(t, tensors[name]), name
    assert wire.opened == [checkpoints.good]
    assert wire.closed == wire.model_ids and len(wire.model_ids) == 1
    if extra.get("window_count") == 1:
        # one region of the window, reused: every later RegionReady has no path
        assert len(wire.ready) > 1 and len({rid for rid, _ in wire.ready}) == 1
    assert sidecar.regions() == set()


def test_the_default_is_safe_for_a_model_that_keeps_its_weights(sidecar: Sidecar, checkpoints: Checkpoints, wire: Wire) -> None:
    """`param.data = loaded_weight` (a load_weights that keeps the tensor it is given) with the default
    copy ("auto") and a window smaller than the model: every kept weight stays right to the end, and
    no clone was made (the tensors are the shared-memory views, their regions handed over)."""
    tensors = _tensors()
    params: dict[str, torch.nn.Parameter] = {}
    with CheckpointWeights(checkpoints.good, LoaderConfig(socket=sidecar.socket, window_bytes=MIB, window_count=2)) as ckpt:
        for name, t in ckpt.weights():
            params[name] = torch.nn.Parameter(torch.empty(0), requires_grad=False)
            params[name].data = t
    assert all(bitwise_equal(p.data, tensors[n]) for n, p in params.items())
    assert not any(p.data.untyped_storage().resizable() for p in params.values())  # views, not clones
    assert any(kind == "retained" for kind, _ in wire.sent)
    assert sidecar.regions() == set()


def test_a_cpu_model_device_gets_the_host_path(sidecar: Sidecar, checkpoints: Checkpoints) -> None:
    # load_weights passes the model's device; on the CPU the tensors are the host ones (no device copy)
    tensors = _tensors()
    cfg = LoaderConfig.parse({"socket": sidecar.socket})
    with CheckpointWeights(checkpoints.good, cfg) as ckpt:
        got = {name: t.clone() for name, t in ckpt.weights(torch.device("cpu"))}
    assert list(got) == list(tensors)
    assert all(t.device.type == "cpu" and bitwise_equal(t, tensors[n]) for n, t in got.items())


def test_streaming_mode_asks_for_the_configured_window(sidecar: Sidecar, checkpoints: Checkpoints, wire: Wire) -> None:
    # The sidecar's default window (256 MiB) holds the whole model in one region; the configured one does not.
    with CheckpointWeights(checkpoints.good, LoaderConfig(socket=sidecar.socket, window_bytes=MIB, window_count=1)) as ckpt:
        list(ckpt.weights())
    assert len(wire.ready) > 1
    assert {rid for rid, _ in wire.ready} == {1}  # one region, reused
    assert ("consumed", 1) in wire.sent  # streaming: the region is handed back


def test_a_consumer_that_stops_early_cancels_the_load(sidecar: Sidecar, checkpoints: Checkpoints, wire: Wire) -> None:
    mark = sidecar.mark()
    with (
        pytest.raises(RuntimeError, match=r"model\.load_weights failed"),
        CheckpointWeights(checkpoints.good, LoaderConfig(socket=sidecar.socket, window_bytes=MIB, window_count=1)) as ckpt,
    ):
        gen = ckpt.weights()
        next(gen)
        gen.close()
        raise RuntimeError("model.load_weights failed")
    assert wire.cancelled == 1
    sidecar.wait_for_event("load.cancelled", since=mark, model_id=wire.model_ids[0])
    assert wire.closed == wire.model_ids and len(wire.model_ids) == 1


# --- errors from the sidecar ---------------------------------------------------------------------------


def test_no_sidecar_is_a_clear_error(short_tmp: Path) -> None:
    sock = str(short_tmp / "none.sock")
    with pytest.raises(SidecarUnavailableError) as info, CheckpointWeights(SOURCE, LoaderConfig(socket=sock)):
        pass
    assert sock in str(info.value)
    if sys.version_info >= (3, 11):
        assert any("load format 'cryptotensors'" in note and SOURCE in note for note in info.value.__notes__)


def test_unknown_model_keeps_the_sidecar_code(sidecar: Sidecar) -> None:
    with pytest.raises(CryptoTensorsError) as info, CheckpointWeights("/models/other", LoaderConfig(socket=sidecar.socket)):
        pass
    assert info.value.code == "ERR_CT_IO"
    assert "/models/other" in info.value.message


def test_a_load_that_fails_midway_raises_the_sidecar_error(sidecar: Sidecar, checkpoints: Checkpoints, wire: Wire) -> None:
    config = LoaderConfig(socket=sidecar.socket, mode="resident")
    with pytest.raises(CryptoTensorsError) as info, CheckpointWeights(checkpoints.tampered, config) as ckpt:
        for _ in ckpt.weights():
            pass
    assert info.value.code == "ERR_CT_DECRYPTION_FAILED"
    assert wire.closed == wire.model_ids and len(wire.model_ids) == 1


def test_a_wrong_token_is_unauthenticated(sidecar: Sidecar, checkpoints: Checkpoints, short_tmp: Path) -> None:
    # The sidecar's socket, reached through a link whose token file holds a stale token.
    link = short_tmp / "stale.sock"
    link.symlink_to(sidecar.socket)
    fd = os.open(f"{link}.token", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write("ab" * 32)
    with pytest.raises(CryptoTensorsError) as info, CheckpointWeights(checkpoints.good, LoaderConfig(socket=str(link))):
        pass
    assert info.value.code == "ERR_CT_UNAUTHENTICATED"


# --- missing weights ------------------------------------------------------------------------------------


def test_missing_weights_fail_loudly() -> None:
    expected = ["a.weight", "b.weight", "c.bias"]
    with pytest.raises(MissingWeightsError) as info:
        check_loaded(SOURCE, expected, {"a.weight"}, strict=True)
    assert info.value.missing == ["b.weight", "c.bias"]
    assert "2 weight(s)" in str(info.value) and "b.weight, c.bias" in str(info.value) and SOURCE in str(info.value)
    assert check_loaded(SOURCE, expected, {"a.weight"}, strict=False) == {"b.weight", "c.bias"}
    assert check_loaded(SOURCE, expected, set(expected), strict=True) == set()
    assert check_loaded(SOURCE, expected, None, strict=True) == set()  # a model that reports nothing


def test_missing_weights_message_is_bounded() -> None:
    with pytest.raises(MissingWeightsError) as info:
        check_loaded(SOURCE, [f"w{i:03d}" for i in range(50)], set(), strict=True)
    assert "(and 30 more)" in str(info.value)


# --- the guard against vLLM's default loader --------------------------------------------------------------


def _write_header(path: Path, header: dict) -> None:
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw)


def test_cryptotensors_files_are_recognized(tmp_path: Path) -> None:
    plain = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain), metadata={"format": "pt"})
    assert not is_cryptotensors_file(plain)
    for marker in ("__encryption__", "__crypto_keys__"):
        enc = tmp_path / f"enc{marker}.safetensors"
        _write_header(enc, {"__metadata__": {marker: "{}"}, "w": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}})
        assert is_cryptotensors_file(enc)
    for junk in (b"", b"short", struct.pack("<Q", 1 << 40), struct.pack("<Q", 4) + b"nope"):
        bad = tmp_path / "bad.safetensors"
        bad.write_bytes(junk)
        assert not is_cryptotensors_file(bad)
    assert not is_cryptotensors_file(tmp_path / "absent.safetensors")


def test_refuse_encrypted_names_the_file(tmp_path: Path) -> None:
    plain = tmp_path / "a.safetensors"
    save_file({"w": torch.zeros(2)}, str(plain))
    refuse_encrypted([str(plain)])
    enc = tmp_path / "b.safetensors"
    _write_header(enc, {"__metadata__": {"__encryption__": "{}"}})
    with pytest.raises(EncryptedWeightsError) as info:
        refuse_encrypted([str(plain), str(enc)])
    assert str(enc) in str(info.value) and "--load-format cryptotensors" in str(info.value)


# --- registration without vLLM ------------------------------------------------------------------------------


def test_version_check() -> None:
    for ok in (MIN_VLLM_VERSION, "0.32.0", "0.32.0+cpu", "1.0.0rc1", "0.11.1.dev3+g1234", ""):
        check_vllm_version(ok)
    for old in ("0.10.2", "0.9.0", "0.10.1rc1+cu128"):
        with pytest.raises(UnsupportedVllmError) as info:
            check_vllm_version(old)
        assert f"vLLM >= {MIN_VLLM_VERSION}" in str(info.value) and old in str(info.value)


def test_import_has_no_side_effects() -> None:
    code = (
        "import sys, ctensors, ctensors.vllm, ctensors.vllm._config, ctensors.vllm._weights, ctensors.vllm._guard\n"
        "assert 'vllm' not in sys.modules, 'vLLM imported'\n"
        "assert not ctensors.vllm._registered\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONWARNINGS": "error"})


def test_entry_point_is_declared() -> None:
    eps = [ep for ep in entry_points(group="vllm.general_plugins") if ep.name == "ctensors"]
    assert [ep.value for ep in eps] == ["ctensors.vllm:register"]
    assert eps[0].load().__name__ == "register"
