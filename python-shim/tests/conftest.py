"""Shared fixtures: a clean environment for every test, short temp dirs (unix socket paths are
limited to 107 bytes), and the in-process fake sidecar (tests/fake_sidecar.py)."""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))  # fake_sidecar, e2e helpers

from fake_sidecar import REGION_PREFIX, FakeModel, FakeSidecar

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def clean_environ() -> Iterator[None]:
    """Every test starts without the variables that steer socket resolution, and leaves none behind."""
    saved = dict(os.environ)
    os.environ.pop("CTENSORS_SOCKET", None)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ct-", dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def sample_tensors() -> dict[str, torch.Tensor]:
    """One tensor per supported dtype, plus a scalar and a 0-element tensor (fixed seed)."""
    g = torch.Generator().manual_seed(0)
    f = torch.randn(3, 5, generator=g)
    tensors = {
        "f32": f,
        "f16": f.to(torch.float16),
        "bf16": f.to(torch.bfloat16),
        "f64": f.to(torch.float64),
        "c64": torch.complex(f, -f),
        "bool": f > 0,
        "u8": torch.randint(0, 255, (7,), generator=g, dtype=torch.uint8),
        "i8": torch.randint(-128, 127, (2, 3), generator=g, dtype=torch.int8),
        "i16": torch.randint(-(2**15), 2**15 - 1, (4,), generator=g, dtype=torch.int16),
        "i32": torch.randint(-(2**31), 2**31 - 1, (4,), generator=g, dtype=torch.int32),
        "i64": torch.randint(-(2**62), 2**62, (2, 2), generator=g, dtype=torch.int64),
        "u16": torch.randint(0, 2**16 - 1, (3,), generator=g, dtype=torch.int32).to(torch.uint16),
        "u32": torch.randint(0, 2**31 - 1, (3,), generator=g, dtype=torch.int64).to(torch.uint32),
        "u64": torch.randint(0, 2**62, (3,), generator=g, dtype=torch.int64).to(torch.uint64),
        "f8_e4m3": f.to(torch.float8_e4m3fn),
        "f8_e5m2": f.to(torch.float8_e5m2),
        "scalar": torch.tensor(3.5),
        "empty": torch.empty(0, 4),
        "big": torch.randn(10, 10, generator=g),  # 400 bytes: larger than the streaming windows asked for in tests
    }
    return tensors


def bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.numel() == 0:
        return True
    return bool(torch.equal(a.contiguous().reshape(-1).view(torch.uint8), b.contiguous().reshape(-1).view(torch.uint8)))


def fake_regions() -> set[str]:
    return set(glob.glob(f"/dev/shm/{REGION_PREFIX}*"))


@pytest.fixture
def fake_sidecar(short_tmp: Path) -> Iterator[Callable[..., FakeSidecar]]:
    """Factory: fake_sidecar(models, **options) -> a started FakeSidecar on <tmp>/sidecar.sock."""
    started: list[FakeSidecar] = []
    before = fake_regions()

    def start(models: dict[str, FakeModel], **options: object) -> FakeSidecar:
        sidecar = FakeSidecar(str(short_tmp / f"sidecar{len(started)}.sock"), models, **options).start()  # type: ignore[arg-type]
        started.append(sidecar)
        return sidecar

    yield start
    for sidecar in started:
        sidecar.stop()
    assert fake_regions() - before == set(), "region files left in /dev/shm"
