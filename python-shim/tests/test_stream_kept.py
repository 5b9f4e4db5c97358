"""Streaming with copy="auto" (_loader._KeptViews) against the real sidecar: zero-copy views that stay
right however long the consumer keeps them. A region is consumed once none of its views is alive,
and retained (handed over to this process, never written again by the sidecar) when the window is
full and a view is still alive. The fallback to copies with a sidecar that does not accept
`retained` uses the scripted fake sidecar, which never announces it (as sidecars older than the
mode): no flag in the real sidecar is needed for it.
"""

from __future__ import annotations

import itertools
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from conftest import Keys, Sidecar, Wire, bitwise_equal, encrypt, short_temp_dir
from fake_sidecar import REGION_PREFIX, FakeSidecar
from safetensors.torch import save_file

import ctensors
from ctensors import _loader
from ctensors._client import SidecarClient

MIB = 1 << 20
OpenStream = Callable[..., Iterator[tuple[str, torch.Tensor]]]
LAYERS = 12


def model_tensors() -> dict[str, torch.Tensor]:
    """12 layers of two 512 KiB tensors and a small bias: several tensors per 1 MiB region, regions reused many times."""
    g = torch.Generator().manual_seed(16)
    out: dict[str, torch.Tensor] = {}
    for i in range(LAYERS):
        out[f"model.layers.{i}.q.weight"] = torch.randn(256, 512, generator=g)
        out[f"model.layers.{i}.k.weight"] = torch.randn(256, 512, generator=g)
        out[f"model.layers.{i}.bias"] = torch.randn(7, generator=g).to(torch.bfloat16)
    out["model.empty"] = torch.zeros(0, 3)
    return out


@pytest.fixture(scope="module")
def model(keys: Keys) -> Iterator[Path]:
    root = short_temp_dir("ctk-")
    try:
        save_file(model_tensors(), str(root / "plain.safetensors"), metadata={"format": "pt"})
        yield encrypt(root / "plain.safetensors", root / "model.enc.safetensors", keys)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def open_stream(sidecar: Sidecar, model: Path) -> Iterator[OpenStream]:
    """stream(copy=..., window_count=...) over the model with 1 MiB regions."""
    client = SidecarClient(sidecar.socket)
    model_id = client.open_model(str(model)).model_id
    try:
        yield lambda copy="auto", window_count=2: _loader.stream(client, model_id, copy=copy, window_bytes=MIB, window_count=window_count)
    finally:
        client.close_model(model_id)
        client.close()


def _mapped_regions(prefix: str) -> list[str]:
    with open("/proc/self/maps") as f:
        return re.findall(rf"({re.escape(prefix)}\w+) \(deleted\)", f.read())


def _is_shm_view(t: torch.Tensor) -> bool:
    """A view of a region made by torch.frombuffer (its storage cannot grow), not a tensor of its own."""
    return not t.untyped_storage().resizable()


def _sent(wire: Wire, kind: str) -> list[int]:
    return [rid for k, rid in wire.sent if k == kind]


@pytest.mark.parametrize("window_count", [1, 2, 3])
def test_a_consumer_that_copies_and_drops_never_retains(sidecar: Sidecar, open_stream: OpenStream, wire: Wire, window_count: int) -> None:
    expected = model_tensors()
    got: dict[str, torch.Tensor] = {}
    views = 0
    for name, t in open_stream(window_count=window_count):
        views += t.numel() > 0 and _is_shm_view(t)
        got[name] = t.clone()  # as vLLM's weight loaders copy into their parameters
    # Zero copy: every tensor was a view, except with a one-region window the last one of each batch (a
    # clone: it is still alive, the consumer's loop variable, when the next batch is needed).
    nonempty = sum(1 for t in expected.values() if t.numel())
    assert views == (nonempty - len(wire.ready) if window_count == 1 else nonempty)
    assert sorted(got) == sorted(expected) and all(bitwise_equal(got[n], expected[n]) for n in expected)
    assert _sent(wire, "retained") == []
    with_path = [rid for rid, path in wire.ready if path]
    assert len(with_path) <= window_count  # the window stayed bounded: regions were reused
    assert len(wire.ready) > len(with_path)
    del t  # the last view: its region is mapped as long as it lives
    assert _mapped_regions(sidecar.region_prefix) == []


def test_kept_tensors_keep_their_bytes(sidecar: Sidecar, open_stream: OpenStream, wire: Wire) -> None:
    """A consumer that keeps every third tensor (as `param.data = loaded_weight` does) reads, after the
    whole stream, exactly what was encrypted: no region it still used was ever refilled."""
    expected = model_tensors()
    kept: dict[str, torch.Tensor] = {}
    for i, (name, t) in enumerate(open_stream()):
        assert bitwise_equal(t, expected[name]), name
        if i % 3 == 0:
            kept[name] = t
    assert len(kept) == (len(expected) + 2) // 3
    for name, t in kept.items():
        assert bitwise_equal(t, expected[name]), name
    retained = _sent(wire, "retained")
    assert retained and len(set(retained)) == len(retained)  # a retained region is never announced again (else a protocol error)
    # The retained regions are this process's memory now, unmapped once their tensors are gone.
    assert _mapped_regions(sidecar.region_prefix)
    del kept, t
    assert _mapped_regions(sidecar.region_prefix) == []
    assert sidecar.regions() == set()


def test_without_retaining_kept_tensors_would_be_overwritten(open_stream: OpenStream) -> None:
    """The hazard copy="auto" removes: with copy=False a kept view reads a refilled region."""
    expected = model_tensors()
    kept = {name: t for i, (name, t) in enumerate(open_stream(copy=False, window_count=1)) if i % 3 == 0}
    assert not all(bitwise_equal(t, expected[n]) for n, t in kept.items())


def test_list_of_the_stream_retains_every_region(open_stream: OpenStream, wire: Wire) -> None:
    expected = model_tensors()
    got = list(open_stream())
    assert sorted(n for n, _ in got) == sorted(expected)
    assert all(bitwise_equal(t, expected[n]) for n, t in got)
    assert _sent(wire, "consumed") == []
    # Every region but the window's last one was retained before the next batch could come.
    assert len(_sent(wire, "retained")) >= len({rid for rid, path in wire.ready if path}) - 1


def test_generator_layers_in_between(open_stream: OpenStream, wire: Wire) -> None:
    """A generator expression and itertools.groupby by layer (as vLLM's AutoWeightsLoader does) hold
    the latest item in their frames; a consumer that copies each tensor still never causes a retain."""
    expected = model_tensors()
    got: dict[str, torch.Tensor] = {}
    renamed = ((name.removeprefix("model."), t) for name, t in open_stream())
    for _layer, group in itertools.groupby(renamed, key=lambda item: ".".join(item[0].split(".")[:2])):
        for name, t in group:
            got["model." + name] = t.clone()
    assert sorted(got) == sorted(expected) and all(bitwise_equal(got[n], expected[n]) for n in expected)
    assert _sent(wire, "retained") == []


def test_closing_early_keeps_the_views_valid(sidecar: Sidecar, open_stream: OpenStream, wire: Wire) -> None:
    expected = model_tensors()
    mark = sidecar.mark()
    items = open_stream()
    first = [next(items) for _ in range(4)]
    items.close()
    assert wire.cancelled == 1
    sidecar.wait_for_event("load.cancelled", since=mark)
    assert all(bitwise_equal(t, expected[n]) for n, t in first)
    assert sidecar.regions() == set()


def test_older_sidecar_gets_copies(short_tmp: Path, wire: Wire) -> None:
    """A sidecar whose RegionReady does not say `accepts_retained` (the fake, like sidecars older than
    copy="auto") is never sent `retained`: copy="auto" falls back to copy=True."""
    tensors = {"a": torch.arange(10, dtype=torch.float32), "b": torch.ones(3, dtype=torch.int64), "c": torch.full((4,), 2.5)}
    fake = FakeSidecar(str(short_tmp / "fake.sock"), tensors, regions=[["a", "b"], ["c"]]).start()
    try:
        with SidecarClient(fake.socket) as client:
            got = list(_loader.stream(client, "m1", copy="auto"))
    finally:
        fake.stop()
    assert [n for n, _ in got] == ["a", "b", "c"]
    assert all(bitwise_equal(t, tensors[n]) for n, t in got)
    assert not any(_is_shm_view(t) for _, t in got)  # clones
    assert wire.sent == [("mapped", 1), ("consumed", 1), ("mapped", 2), ("consumed", 2)]
    assert _sent(wire, "retained") == []
    assert _mapped_regions("/dev/shm/" + REGION_PREFIX) == []


def test_safe_open_stream_auto_keeps_its_views_right(sidecar: Sidecar, model: Path, wire: Wire) -> None:
    """The public API passes copy="auto" through (it once turned it into copy=True): zero-copy views,
    kept ones right after the whole stream."""
    expected = model_tensors()
    kept: dict[str, torch.Tensor] = {}
    with ctensors.safe_open(str(model), framework="pt", socket=sidecar.socket) as f:
        for i, (name, t) in enumerate(f.stream(copy="auto", window_bytes=MIB, window_count=2)):
            if t.numel():
                assert _is_shm_view(t), name
            if i % 3 == 0:
                kept[name] = t
    assert all(bitwise_equal(t, expected[name]) for name, t in kept.items())
    assert _sent(wire, "retained")
