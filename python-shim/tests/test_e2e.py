"""End to end: the real TypeScript sidecar (`ctensors serve`) serving models the real CLI encrypted,
loaded by this package in this process and in child processes.

Fixture (once per module): two tiny Llamas (make_tiny_model.py, seeds 0 and 1), one file with a tensor
of every dtype and one of 4.5 MiB, encrypted by `ctensors encrypt` with the session's keys and served
by the session's sidecar (conftest.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import torch
from conftest import REPO_ROOT, Keys, Sidecar, bitwise_equal, cli, encrypt, keygen, make_tiny_model, sample_tensors, short_temp_dir
from safetensors.torch import load_file as st_load_file
from safetensors.torch import save_file as st_save_file

import ctensors
from ctensors._client import SidecarClient
from ctensors._proto import sidecar_pb2, sidecar_pb2_grpc
from ctensors.errors import CryptoTensorsError, SidecarUnavailableError, from_rpc_error

pytestmark = pytest.mark.e2e

CHILD = Path(__file__).with_name("e2e_child.py")
PROMPT = torch.tensor([[1, 2, 3, 4]])


def _plain_tensors(model: Path) -> dict[str, torch.Tensor]:
    files = [model] if model.is_file() else sorted(model.glob("*.safetensors"))
    tensors: dict[str, torch.Tensor] = {}
    for shard in files:
        tensors.update(st_load_file(shard))
    return tensors


def _digests(tensors: dict[str, torch.Tensor]) -> dict[str, dict[str, object]]:
    def digest(t: torch.Tensor) -> str:
        raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
        return hashlib.sha256(raw).hexdigest()

    return {n: {"sha256": digest(t), "dtype": str(t.dtype), "shape": list(t.shape)} for n, t in tensors.items()}


def big_tensors() -> dict[str, torch.Tensor]:
    """12 tensors of 384 KiB (4.5 MiB): more than the sidecar's smallest streaming window (1 MiB)."""
    g = torch.Generator().manual_seed(7)
    return {f"layer.{i}.weight": torch.randn(192, 512, generator=g) for i in range(12)}


def _wait_no_new_regions(sidecar: Sidecar, before: set[str], timeout: float = 15.0) -> set[str]:
    deadline = time.monotonic() + timeout
    while True:
        left = sidecar.regions() - before
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


@dataclass
class Env:
    root: Path
    keys: Keys
    sidecar: Sidecar
    plain_a: Path
    enc_a: Path
    plain_b: Path
    enc_b: Path
    plain_file: Path
    enc_file: Path
    plain_big: Path
    enc_big: Path

    @property
    def socket(self) -> str:
        return self.sidecar.socket

    def expected_json(self, plain: Path) -> Path:
        out = self.root / f"expected-{plain.name}.json"
        if not out.exists():
            out.write_text(json.dumps(_digests(_plain_tensors(plain))))
        return out


@pytest.fixture(scope="module")
def env(keys: Keys, sidecar: Sidecar) -> Iterator[Env]:
    root = short_temp_dir("cte-")
    try:
        make_tiny_model(root / "plain-a")
        make_tiny_model(root / "plain-b", "--seed", "1")
        st_save_file(sample_tensors(), str(root / "all-dtypes.safetensors"), metadata={"format": "pt"})
        st_save_file(big_tensors(), str(root / "big.safetensors"), metadata={"format": "pt"})
        encrypt(root / "plain-a", root / "enc-a", keys)
        encrypt(root / "plain-b", root / "enc-b", keys)
        encrypt(root / "all-dtypes.safetensors", root / "all-dtypes.enc.safetensors", keys)
        encrypt(root / "big.safetensors", root / "big.enc.safetensors", keys)
        yield Env(
            root,
            keys,
            sidecar,
            root / "plain-a",
            root / "enc-a",
            root / "plain-b",
            root / "enc-b",
            root / "all-dtypes.safetensors",
            root / "all-dtypes.enc.safetensors",
            root / "big.safetensors",
            root / "big.enc.safetensors",
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- loading -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["folder", "file"])
def test_load_file_is_bitwise_equal_to_the_plaintext(env: Env, which: str) -> None:
    plain, enc = (env.plain_a, env.enc_a) if which == "folder" else (env.plain_file, env.enc_file)
    expected = _plain_tensors(plain)
    loaded = ctensors.load_file(enc, socket=env.socket)
    assert sorted(loaded) == sorted(expected)
    for name, t in expected.items():
        assert bitwise_equal(loaded[name], t), name


def test_safe_open(env: Env) -> None:
    expected = _plain_tensors(env.plain_a)
    with ctensors.safe_open(env.enc_a, framework="pt", socket=env.socket) as f:
        assert f.keys() == sorted(expected)
        assert sorted(f.offset_keys()) == sorted(expected)
        assert f.metadata() == {"format": "pt"}
        t = f.get_tensor("lm_head.weight")
        assert bitwise_equal(t, expected["lm_head.weight"])
        s = f.get_slice("model.embed_tokens.weight")
        assert s.get_shape() == list(expected["model.embed_tokens.weight"].shape) and s.get_dtype() == "F32"
        assert bitwise_equal(s[3:7, ::2], expected["model.embed_tokens.weight"][3:7, ::2])
        with pytest.raises(KeyError):
            f.get_tensor("no.such.tensor")
    assert bitwise_equal(t, expected["lm_head.weight"])  # valid after close


def test_every_dtype_through_safe_open(env: Env) -> None:
    expected = sample_tensors()
    with ctensors.safe_open(env.enc_file, socket=env.socket) as f:
        assert f.keys() == sorted(expected)
        for name, t in expected.items():
            got = f.get_tensor(name)
            assert bitwise_equal(got, t), name


def test_transformers_generation_matches_the_plaintext_model(env: Env) -> None:
    transformers = pytest.importorskip("transformers")
    import ctensors.transformers

    model = ctensors.transformers.from_pretrained(env.enc_a, socket=env.socket)
    plain = transformers.AutoModelForCausalLM.from_pretrained(env.plain_a)
    with torch.no_grad():
        got = model.generate(PROMPT, max_new_tokens=20, do_sample=False)
        want = plain.generate(PROMPT, max_new_tokens=20, do_sample=False)
    assert want.shape[1] > PROMPT.shape[1]
    assert torch.equal(got, want)


@pytest.mark.parametrize("copy", [True, False])
def test_streaming_yields_every_tensor(env: Env, copy: bool) -> None:
    expected = _plain_tensors(env.plain_a)
    seen = []
    with ctensors.safe_open(env.enc_a, socket=env.socket) as f:
        for name, t in f.stream(window_count=2, copy=copy):
            assert bitwise_equal(t, expected[name]), name
            seen.append(name)
    assert sorted(seen) == sorted(expected)


@pytest.mark.parametrize(("window_count", "copy"), [(1, True), (2, True), (2, False)])
def test_streaming_reuses_a_bounded_window(env: Env, monkeypatch: pytest.MonkeyPatch, window_count: int, copy: bool) -> None:
    from ctensors import _loader

    mapped: list[int] = []
    real_map = _loader.map_region

    def counting_map(path: str, size: int):  # type: ignore[no-untyped-def]
        mapped.append(size)
        return real_map(path, size)

    monkeypatch.setattr(_loader, "map_region", counting_map)
    expected = big_tensors()
    kept = {}
    with ctensors.safe_open(env.enc_big, socket=env.socket) as f:
        for name, t in f.stream(window_bytes=1 << 20, window_count=window_count, copy=copy):
            assert bitwise_equal(t, expected[name]), name
            if copy:
                kept[name] = t
    # At most window_count regions of 1 MiB were mapped for 4.5 MiB of tensors: they were refilled.
    assert len(mapped) == window_count and all(size == 1 << 20 for size in mapped)
    # Copies stay correct after their region was overwritten.
    assert all(bitwise_equal(kept[n], expected[n]) for n in kept)


def test_streaming_a_subset(env: Env) -> None:
    expected = sample_tensors()
    names = ["big", "bf16", "empty", "scalar"]
    with ctensors.safe_open(env.enc_file, socket=env.socket) as f:
        got = dict(f.stream(names))
    assert sorted(got) == sorted(names)
    assert all(bitwise_equal(got[n], expected[n]) for n in names)


# --- errors --------------------------------------------------------------------------------------


def test_wrong_socket_is_a_clear_error(env: Env) -> None:
    wrong = str(env.root / "s" / "nope.sock")
    with pytest.raises(SidecarUnavailableError) as info:
        ctensors.load_file(env.enc_a, socket=wrong)
    assert wrong in str(info.value) and "Is the sidecar running?" in str(info.value)


def test_a_client_without_the_token_is_refused(env: Env) -> None:
    with SidecarClient(env.socket, token="0" * 64) as client, pytest.raises(CryptoTensorsError) as info:
        client.open_model(str(env.enc_a))
    assert info.value.code == "ERR_CT_UNAUTHENTICATED"
    # And with no authorization metadata at all.
    with grpc.insecure_channel(f"unix:{env.socket}") as channel:
        stub = sidecar_pb2_grpc.SidecarStub(channel)
        with pytest.raises(grpc.RpcError) as raw:
            stub.OpenModel(sidecar_pb2.OpenModelRequest(source=str(env.enc_a)))
    assert from_rpc_error(raw.value, socket=env.socket).code == "ERR_CT_UNAUTHENTICATED"


def test_a_missing_model_is_a_sidecar_error(env: Env) -> None:
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file(env.root / "no-such-model", socket=env.socket)
    assert info.value.code == "ERR_CT_IO" and "no-such-model" in info.value.message
    assert not isinstance(info.value, SidecarUnavailableError)


def test_a_model_signed_by_an_untrusted_key_is_refused(env: Env) -> None:
    other = env.root / "other-keys"
    if not other.exists():
        stranger = keygen(other)
        cli("encrypt", env.plain_file, env.root / "untrusted.enc.safetensors", "--key", env.keys.enc, "--sign-key", stranger.sign)
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file(env.root / "untrusted.enc.safetensors", socket=env.socket)
    assert info.value.code == "ERR_CT_UNTRUSTED_SIGNER"
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.safe_open(env.root / "untrusted.enc.safetensors", socket=env.socket)
    assert info.value.code == "ERR_CT_UNTRUSTED_SIGNER"


def test_a_shape_beyond_addressable_sizes_is_a_format_error(env: Env) -> None:
    # A valid file (the sidecar serves it) whose empty tensor has sizes torch cannot stride.
    plain, encrypted = env.root / "huge-shape.safetensors", env.root / "huge-shape.enc.safetensors"
    if not encrypted.exists():
        header = json.dumps(
            {
                "__metadata__": {"format": "pt"},
                "huge": {"dtype": "F32", "shape": [0, 2**52, 2**52], "data_offsets": [0, 0]},
                "w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            }
        ).encode()
        header += b" " * (-len(header) % 8)
        plain.write_bytes(len(header).to_bytes(8, "little") + header + bytes(8))
        encrypt(plain, encrypted, env.keys)
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file(encrypted, socket=env.socket)
    assert info.value.code == "ERR_CT_FORMAT" and "beyond what torch can address" in info.value.message
    with ctensors.safe_open(encrypted, socket=env.socket) as f:
        assert f.get_slice("huge").get_shape() == [0, 2**52, 2**52]
        assert f.get_tensor("w").tolist() == [0.0, 0.0]
        with pytest.raises(CryptoTensorsError) as info:
            f.get_tensor("huge")
        assert info.value.code == "ERR_CT_FORMAT"


# --- processes, shared memory and disk -----------------------------------------------------------


def _child(env: Env, mode: str, model: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), env.socket, mode, str(model), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=env.root,
    )


def test_no_region_left_after_a_client_exits(env: Env) -> None:
    before = env.sidecar.regions()
    proc = _child(env, "load-exit", env.enc_a)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.startswith("LOADED")
    assert _wait_no_new_regions(env.sidecar, before) == set()


def test_no_region_left_after_a_client_is_killed_mid_load(env: Env) -> None:
    before = env.sidecar.regions()
    proc = _child(env, "stream-hang", env.enc_big)
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "LOADING", proc.stderr.read() if proc.stderr else ""
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert _wait_no_new_regions(env.sidecar, before) == set()
    # The sidecar is still serving.
    assert bitwise_equal(ctensors.load_file(env.enc_file, socket=env.socket)["big"], sample_tensors()["big"])


def _snapshot(roots: list[str]) -> dict[str, tuple[int, int, int]]:
    files: dict[str, tuple[int, int, int]] = {}
    stack = list(dict.fromkeys(roots))
    while stack:
        d = stack.pop()
        try:
            entries = os.scandir(d)
        except OSError:
            continue
        with entries:
            for e in entries:
                try:
                    if e.is_dir(follow_symlinks=False):
                        stack.append(e.path)
                    elif e.is_file(follow_symlinks=False):
                        st = e.stat(follow_symlinks=False)
                        files[e.path] = (st.st_size, st.st_mtime_ns, st.st_ino)
                except OSError:
                    pass
    return files


def _contains(path: str, needle: bytes) -> bool:
    try:
        with open(path, "rb") as f:
            tail = b""
            while chunk := f.read(1 << 20):
                if needle in tail + chunk:
                    return True
                tail = chunk[-(len(needle) - 1) :]
    except OSError:
        return False
    return False


def test_no_plaintext_is_written_outside_shared_memory(env: Env) -> None:
    plain = _plain_tensors(env.plain_a)["lm_head.weight"]
    raw = plain.contiguous().view(torch.uint8).reshape(-1).numpy().tobytes()
    needle = raw[len(raw) // 2 : len(raw) // 2 + 64]
    assert len(set(needle)) > 8  # a distinctive window, not padding
    roots = ["/tmp", tempfile.gettempdir(), os.path.expanduser("~"), str(REPO_ROOT), str(env.root)]
    before = _snapshot(roots)
    # A load in a child process, and the three APIs in this one.
    proc = _child(env, "verify", env.enc_a, str(env.expected_json(env.plain_a)))
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and out.strip() == "OK", out + err
    tensors = ctensors.load_file(env.enc_a, socket=env.socket)
    with ctensors.safe_open(env.enc_a, socket=env.socket) as f:
        streamed = dict(f.stream())
    assert bitwise_equal(tensors["lm_head.weight"], plain) and bitwise_equal(streamed["lm_head.weight"], plain)
    after = _snapshot(roots)
    changed = [p for p, meta in after.items() if before.get(p) != meta]
    leaked = [p for p in changed if _contains(p, needle)]
    assert leaked == []
    # The probe works: the plaintext model itself does contain the window.
    assert any(_contains(str(p), needle) for p in env.plain_a.glob("*.safetensors"))


def test_concurrent_clients_same_and_different_models(env: Env) -> None:
    jobs = []
    for plain, enc in [(env.plain_a, env.enc_a), (env.plain_b, env.enc_b), (env.plain_file, env.enc_file)]:
        expected = str(env.expected_json(plain))
        jobs += [_child(env, "verify", enc, expected) for _ in range(2)]
    results = [proc.communicate(timeout=180) for proc in jobs]
    for proc, (out, err) in zip(jobs, results, strict=True):
        assert proc.returncode == 0 and out.strip() == "OK", out + err
