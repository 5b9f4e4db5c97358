"""The client half of the Load protocol, against the real sidecar (`ctensors serve`, session fixture)
serving files the CLI encrypted. `wire` records what the client receives and sends. Protocol
violations, which the real sidecar never commits, and a resident load over several regions use the
scripted fake (tests/fake_sidecar.py)."""

from __future__ import annotations

import glob
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, Keys, Sidecar, Wire, bitwise_equal, encrypt, file_order, sample_tensors, short_temp_dir, tamper_tensor_bytes
from fake_sidecar import REGION_PREFIX, FakeSidecar
from safetensors.torch import save_file

import ctensors
from ctensors._client import SidecarClient
from ctensors.errors import CryptoTensorsError

MIB = 1 << 20


def streamed_tensors() -> dict[str, torch.Tensor]:
    """Every dtype, plus 4 MiB more: several of the sidecar's smallest streaming windows (1 MiB)."""
    g = torch.Generator().manual_seed(5)
    return sample_tensors() | {f"layer.{i}.weight": torch.randn(256, 512, generator=g) for i in range(8)}


@dataclass
class Models:
    """Plaintext files and their encrypted copies (`ctensors encrypt` with the session's keys)."""

    root: Path
    sample: Path  # sample_tensors()
    small: Path  # two float32 tensors
    one: Path  # {"x": [1, 1]}
    streamed: Path  # streamed_tensors()
    streamed_plain: Path
    tampered: Path  # streamed, one bit of the last tensor's ciphertext flipped


@pytest.fixture(scope="module")
def models(keys: Keys) -> Iterator[Models]:
    root = short_temp_dir("ctl-")
    try:

        def make(name: str, tensors: dict[str, torch.Tensor]) -> tuple[Path, Path]:
            save_file(tensors, str(root / f"{name}.safetensors"), metadata={"format": "pt"})
            return root / f"{name}.safetensors", encrypt(root / f"{name}.safetensors", root / f"{name}.enc.safetensors", keys)

        streamed_plain, streamed = make("streamed", streamed_tensors())
        tampered = tamper_tensor_bytes(streamed, root / "tampered.enc.safetensors", file_order(streamed)[-1])
        yield Models(
            root,
            make("sample", sample_tensors())[1],
            make("small", {"a": torch.arange(16, dtype=torch.float32), "b": torch.ones(4)})[1],
            make("one", {"x": torch.ones(2)})[1],
            streamed,
            streamed_plain,
            tampered,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _shm_files(prefix: str) -> list[str]:
    """The (unlinked) region files this process maps."""
    with open("/proc/self/maps") as f:
        return re.findall(rf"({re.escape(prefix)}\w+) \(deleted\)", f.read())


def test_load_file_resident_all_dtypes(sidecar: Sidecar, models: Models, wire: Wire) -> None:
    tensors = sample_tensors()
    mapped_before = set(_shm_files(sidecar.region_prefix))
    loaded = ctensors.load_file(models.sample, socket=sidecar.socket)
    assert list(loaded) == file_order(models.sample)
    for name, t in tensors.items():
        assert bitwise_equal(loaded[name], t), name
    # One region, mapped then unlinked; the model was closed.
    assert wire.sent == [("mapped", 1)]
    assert wire.closed == wire.model_ids and len(wire.model_ids) == 1
    assert not sidecar.holds(models.sample)
    assert sidecar.regions() == set()
    # Zero copy: the tensors live in the (unlinked) shared-memory file; it goes away with them.
    assert len(set(_shm_files(sidecar.region_prefix)) - mapped_before) == 1
    del loaded
    assert set(_shm_files(sidecar.region_prefix)) - mapped_before == set()


def test_resident_tensors_are_writable_views(sidecar: Sidecar, models: Models) -> None:
    loaded = ctensors.load_file(models.small, socket=sidecar.socket)
    a, b = loaded["a"], loaded["b"]
    assert b.data_ptr() - a.data_ptr() == 64  # neighbours in one mapping, 64-byte aligned
    a.add_(1)
    assert a[0].item() == 1.0


def test_relative_path_is_sent_absolute(
    sidecar: Sidecar, models: Models, wire: Wire, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sidecar refuses relative paths (its working directory is not the client's).
    source = str(tmp_path / "model.safetensors")
    shutil.copy(models.one, source)
    monkeypatch.chdir(tmp_path)
    assert ctensors.load_file("model.safetensors", socket=sidecar.socket)["x"].tolist() == [1.0, 1.0]
    assert wire.opened == [source]


def test_socket_from_environment(sidecar: Sidecar, models: Models) -> None:
    os.environ["CTENSORS_SOCKET"] = sidecar.socket
    assert list(ctensors.load_file(models.one)) == ["x"]


@pytest.mark.parametrize("window_count", [1, 2, 3])
def test_streaming_reuses_regions_and_copies(sidecar: Sidecar, models: Models, wire: Wire, window_count: int) -> None:
    tensors = streamed_tensors()
    mapped_before = set(_shm_files(sidecar.region_prefix))
    with ctensors.safe_open(models.streamed, socket=sidecar.socket) as f:
        received = list(f.stream(window_bytes=MIB, window_count=window_count))
    assert [n for n, _ in received] == file_order(models.streamed_plain)
    for name, t in received:
        assert bitwise_equal(t, tensors[name]), name
        assert t.numel() == 0 or t.untyped_storage().nbytes() == t.numel() * t.element_size()  # own storage
    # Every region was announced with a path once, then reused with an empty path. The window is at most
    # `window_count` regions: the sidecar makes the next one only when no consumed region can be refilled,
    # so a client that consumes quickly may see fewer (timing), never more.
    with_path = [rid for rid, path in wire.ready if path]
    assert sorted(with_path) == list(range(1, len(with_path) + 1))
    assert 1 <= len(with_path) <= window_count
    assert len(wire.ready) > len(with_path)
    reused = [rid for rid, path in wire.ready if not path]
    assert reused and all(rid in with_path for rid in reused)
    consumed = [rid for kind, rid in wire.sent if kind == "consumed"]
    assert len(consumed) >= len(reused)
    assert set(_shm_files(sidecar.region_prefix)) - mapped_before == set()  # copies only: no mapping outlives the stream


def test_streaming_without_copy_gives_views_valid_until_next(sidecar: Sidecar, models: Models) -> None:
    tensors = streamed_tensors()
    with ctensors.safe_open(models.streamed, socket=sidecar.socket) as f:
        seen = []
        for name, view in f.stream(copy=False, window_bytes=MIB, window_count=1):
            assert bitwise_equal(view, tensors[name]), name  # valid now
            seen.append(name)
    assert seen == file_order(models.streamed_plain)


def test_streaming_a_subset_in_the_order_asked(sidecar: Sidecar, models: Models) -> None:
    tensors = sample_tensors()
    with ctensors.safe_open(models.sample, socket=sidecar.socket) as f:
        got = dict(f.stream(["big", "bf16", "empty"]))
    assert list(got) == ["big", "bf16", "empty"]
    assert all(bitwise_equal(got[n], tensors[n]) for n in got)


def test_closing_a_stream_early_cancels_it(sidecar: Sidecar, models: Models, wire: Wire) -> None:
    tensors = streamed_tensors()
    mark = sidecar.mark()
    with ctensors.safe_open(models.streamed, socket=sidecar.socket) as f:
        gen = f.stream(window_bytes=MIB, window_count=1)
        next(gen)
        gen.close()
        assert wire.cancelled == 1
        sidecar.wait_for_event("load.cancelled", since=mark, model_id=wire.model_ids[0])
        # The handle is still usable after an abandoned stream.
        assert bitwise_equal(f.get_tensor("f32"), tensors["f32"])
    assert sidecar.regions() == set()


def test_server_error_mid_load_is_mapped(sidecar: Sidecar, models: Models, wire: Wire) -> None:
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file(models.tampered, socket=sidecar.socket)
    assert info.value.code == "ERR_CT_DECRYPTION_FAILED" and info.value.message.startswith("decryption failed")
    assert wire.closed == wire.model_ids and len(wire.model_ids) == 1  # closed on the error path too
    assert not sidecar.holds(models.tampered)


def test_open_error_carries_the_sidecar_code(sidecar: Sidecar) -> None:
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file("/no/such/model", socket=sidecar.socket)
    assert info.value.code == "ERR_CT_IO" and "/no/such/model" in info.value.message


def test_wrong_token_is_unauthenticated(sidecar: Sidecar, models: Models) -> None:
    with SidecarClient(sidecar.socket, token="00" * 32) as client, pytest.raises(CryptoTensorsError) as info:
        client.open_model(str(models.one))
    assert info.value.code == "ERR_CT_UNAUTHENTICATED"


def test_health(sidecar: Sidecar) -> None:
    version = json.loads((REPO_ROOT / "plugin" / "package.json").read_text())["version"]
    with SidecarClient(sidecar.socket) as client:
        health = client.health()
    assert health.version == version and health.require_encrypted


# --- what only a scripted sidecar can do -----------------------------------------------------------

SOURCE = "/models/sample"


def fake_regions() -> set[str]:
    return set(glob.glob(f"/dev/shm/{REGION_PREFIX}*"))


@pytest.fixture
def fake_sidecar(short_tmp: Path) -> Iterator[Callable[..., FakeSidecar]]:
    """Factory: fake_sidecar(tensors, regions=..., fault=...) -> a started FakeSidecar in short_tmp."""
    started: list[FakeSidecar] = []
    before = fake_regions()

    def start(tensors: dict[str, torch.Tensor], **options: object) -> FakeSidecar:
        fake = FakeSidecar(str(short_tmp / f"fake{len(started)}.sock"), tensors, **options).start()  # type: ignore[arg-type]
        started.append(fake)
        return fake

    yield start
    for fake in started:
        fake.stop()
    assert fake_regions() - before == set(), "region files left in /dev/shm"


def test_resident_over_several_regions(fake_sidecar: Callable[..., FakeSidecar]) -> None:
    """Scripted: the real sidecar packs up to 1 GiB into a resident region (no `serve` setting lowers
    it), so several resident regions need a model of gigabytes; the fake splits a small one."""
    tensors = sample_tensors()
    names = list(tensors)
    sidecar = fake_sidecar(tensors, regions=[names[i : i + 4] for i in range(0, len(names), 4)])
    loaded = ctensors.load_file(SOURCE, socket=sidecar.socket)
    assert all(bitwise_equal(loaded[n], t) for n, t in tensors.items())
    regions = [rid for rid, _ in sidecar.ready_paths]
    assert len(regions) > 3
    assert sidecar.client_messages == [("mapped", rid) for rid in regions]
    assert sidecar.closed_models == ["m1"]


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ("path_outside_shm", "not a file on a tmpfs or hugetlbfs mount"),
        ("no_done", "without `done`"),
        ("bad_done_count", "`done` counts"),
        ("bad_offset", "not aligned"),
        ("short_file", "fewer than the announced"),
    ],
)
def test_protocol_violations_are_reported(fake_sidecar: Callable[..., FakeSidecar], fault: str, needle: str) -> None:
    """Scripted: the real sidecar never sends these; the client must still refuse them."""
    sidecar = fake_sidecar(sample_tensors(), fault=fault)
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file(SOURCE, socket=sidecar.socket)
    assert info.value.code == "ERR_CT_INTERNAL" and needle in info.value.message
    assert sidecar.load_finished.wait(10)


def test_region_without_path_that_was_never_mapped(fake_sidecar: Callable[..., FakeSidecar]) -> None:
    """Scripted: a RegionReady without a path for a region the client never mapped (the real sidecar
    sends a path the first time it announces each region)."""
    tensors = sample_tensors()
    names = list(tensors)
    sidecar = fake_sidecar(tensors, regions=[names[:10], names[10:]], fault="unknown_region")
    with ctensors.safe_open(SOURCE, socket=sidecar.socket) as f, pytest.raises(CryptoTensorsError) as info:
        list(f.stream(window_bytes=256, window_count=2))
    assert "never mapped" in info.value.message
    assert sidecar.load_finished.wait(10)
