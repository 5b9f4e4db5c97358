"""The client half of the Load protocol, against the in-process fake sidecar (no crypto, no TS)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import torch
from conftest import bitwise_equal, fake_regions, sample_tensors
from fake_sidecar import FakeModel

import ctensors
from ctensors._client import SidecarClient
from ctensors.errors import CryptoTensorsError

SOURCE = "/models/sample"


def _shm_mappings() -> list[str]:
    with open("/proc/self/maps") as f:
        return re.findall(r"(/dev/shm/ctensors-fake-\w+) \(deleted\)", f.read())


def test_load_file_resident_all_dtypes(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    sidecar = fake_sidecar({SOURCE: FakeModel(tensors)})
    loaded = ctensors.load_file(SOURCE, socket=sidecar.socket)
    assert list(loaded) == list(tensors)
    for name, t in tensors.items():
        assert bitwise_equal(loaded[name], t), name
    # One region, mapped then unlinked; the model was closed.
    assert sidecar.client_messages == [("mapped", 1)]
    assert sidecar.closed_models == ["m1"]
    assert fake_regions() == set()
    # Zero copy: the tensors live in the (unlinked) shared-memory file; it goes away with them.
    assert len(set(_shm_mappings())) == 1
    del loaded
    assert _shm_mappings() == []


def test_resident_tensors_are_writable_views(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({SOURCE: FakeModel({"a": torch.arange(16, dtype=torch.float32), "b": torch.ones(4)})})
    loaded = ctensors.load_file(SOURCE, socket=sidecar.socket)
    a, b = loaded["a"], loaded["b"]
    assert b.data_ptr() - a.data_ptr() == 64  # neighbours in one mapping, 64-byte aligned
    a.add_(1)
    assert a[0].item() == 1.0


def test_resident_over_several_regions(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    sidecar = fake_sidecar({SOURCE: FakeModel(tensors)}, resident_region_bytes=512)
    loaded = ctensors.load_file(SOURCE, socket=sidecar.socket)
    assert all(bitwise_equal(loaded[n], t) for n, t in tensors.items())
    regions = [rid for rid, _ in sidecar.ready_paths]
    assert len(regions) > 3
    assert sidecar.client_messages == [("mapped", rid) for rid in regions]


def test_relative_path_is_sent_absolute(fake_sidecar, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    source = str(tmp_path / "model")
    sidecar = fake_sidecar({source: FakeModel({"x": torch.ones(2)})})
    monkeypatch.chdir(tmp_path)
    assert ctensors.load_file("model", socket=sidecar.socket)["x"].tolist() == [1.0, 1.0]
    assert sidecar.open_calls == [source]


def test_socket_from_environment(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({SOURCE: FakeModel({"x": torch.ones(2)})})
    os.environ["CTENSORS_SOCKET"] = sidecar.socket
    assert list(ctensors.load_file(SOURCE)) == ["x"]


@pytest.mark.parametrize("window_count", [1, 2, 3])
def test_streaming_reuses_regions_and_copies(fake_sidecar, window_count: int) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    sidecar = fake_sidecar({SOURCE: FakeModel(tensors)})
    with ctensors.safe_open(SOURCE, socket=sidecar.socket) as f:
        received = list(f.stream(window_bytes=256, window_count=window_count))
    assert [n for n, _ in received] == list(tensors)
    for name, t in received:
        assert bitwise_equal(t, tensors[name]), name
        assert t.numel() == 0 or t.untyped_storage().nbytes() == t.numel() * t.element_size()  # own storage
    # Every region was announced with a path once, then reused with an empty path.
    with_path = [rid for rid, path in sidecar.ready_paths if path]
    assert sorted(with_path) == list(range(1, window_count + 1))
    assert len(sidecar.ready_paths) > window_count
    reused = [rid for rid, path in sidecar.ready_paths if not path]
    assert reused and all(rid in with_path for rid in reused)
    consumed = [rid for kind, rid in sidecar.client_messages if kind == "consumed"]
    assert len(consumed) >= len(reused)
    assert _shm_mappings() == []  # copies only: no mapping outlives the stream


def test_streaming_without_copy_gives_views_valid_until_next(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    sidecar = fake_sidecar({SOURCE: FakeModel(tensors)})
    with ctensors.safe_open(SOURCE, socket=sidecar.socket) as f:
        seen = []
        for name, view in f.stream(copy=False, window_bytes=256, window_count=1):
            assert bitwise_equal(view, tensors[name]), name  # valid now
            seen.append(name)
    assert seen == list(tensors)


def test_streaming_a_subset_in_the_order_asked(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    sidecar = fake_sidecar({SOURCE: FakeModel(tensors)})
    with ctensors.safe_open(SOURCE, socket=sidecar.socket) as f:
        got = dict(f.stream(["big", "bf16", "empty"]))
    assert list(got) == ["big", "bf16", "empty"]
    assert all(bitwise_equal(got[n], tensors[n]) for n in got)


def test_closing_a_stream_early_cancels_it(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    tensors = sample_tensors()
    sidecar = fake_sidecar({SOURCE: FakeModel(tensors)})
    with ctensors.safe_open(SOURCE, socket=sidecar.socket) as f:
        gen = f.stream(window_bytes=256, window_count=1)
        next(gen)
        gen.close()
        assert sidecar.load_finished.wait(10)
        # The handle is still usable after an abandoned stream.
        assert bitwise_equal(f.get_tensor("f32"), tensors["f32"])
    assert fake_regions() == set()


def test_server_error_mid_load_is_mapped(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({SOURCE: FakeModel(sample_tensors())}, fault="abort_mid_load")
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file(SOURCE, socket=sidecar.socket)
    assert info.value.code == "ERR_CT_DECRYPTION_FAILED" and info.value.message == "decryption failed"
    assert sidecar.closed_models == ["m1"]  # closed on the error path too


@pytest.mark.parametrize(
    ("fault", "needle"),
    [
        ("path_outside_shm", "not a file directly under /dev/shm"),
        ("no_done", "without `done`"),
        ("bad_done_count", "`done` counts"),
        ("bad_offset", "not aligned"),
        ("short_file", "fewer than the announced"),
    ],
)
def test_protocol_violations_are_reported(fake_sidecar, fault: str, needle: str) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({SOURCE: FakeModel(sample_tensors())}, fault=fault)
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file(SOURCE, socket=sidecar.socket)
    assert info.value.code == "ERR_CT_INTERNAL" and needle in info.value.message
    assert sidecar.load_finished.wait(10)


def test_region_without_path_that_was_never_mapped(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({SOURCE: FakeModel(sample_tensors())}, fault="unknown_region")
    with ctensors.safe_open(SOURCE, socket=sidecar.socket) as f, pytest.raises(CryptoTensorsError) as info:
        list(f.stream(window_bytes=256, window_count=2))
    assert "never mapped" in info.value.message
    assert sidecar.load_finished.wait(10)


def test_open_error_carries_the_sidecar_code(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({})
    with pytest.raises(CryptoTensorsError) as info:
        ctensors.load_file("/no/such/model", socket=sidecar.socket)
    assert info.value.code == "ERR_CT_IO" and "/no/such/model" in info.value.message


def test_wrong_token_is_unauthenticated(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({SOURCE: FakeModel({"x": torch.ones(1)})})
    with SidecarClient(sidecar.socket, token="00" * 32) as client, pytest.raises(CryptoTensorsError) as info:
        client.open_model(SOURCE)
    assert info.value.code == "ERR_CT_UNAUTHENTICATED"


def test_health(fake_sidecar) -> None:  # type: ignore[no-untyped-def]
    sidecar = fake_sidecar({})
    with SidecarClient(sidecar.socket) as client:
        assert client.health().version == "fake"
