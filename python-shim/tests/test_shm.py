"""_shm: dtype map, mapping a region file (created here in /dev/shm) and zero-copy tensor views."""

from __future__ import annotations

import gc
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from conftest import bitwise_equal, sample_tensors

from ctensors._shm import DTYPES, _ram_file_system, map_region, safetensors_dtype, tensor_view, torch_dtype
from ctensors.errors import CryptoTensorsError


@pytest.fixture
def region_file() -> Iterator[Path]:
    path = Path(f"/dev/shm/ctensors-test-{secrets.token_hex(8)}")
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    os.ftruncate(fd, 4096)
    os.close(fd)
    try:
        yield path
    finally:
        if path.exists():
            path.unlink()


def test_dtype_map_matches_safetensors_names() -> None:
    from safetensors.torch import _TYPES  # the names safetensors itself uses

    for name, dtype in DTYPES.items():
        if name in _TYPES:
            assert _TYPES[name] == dtype, name
    for name in ["BOOL", "U8", "I8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "BF16", "F32", "F64", "F8_E4M3", "F8_E5M2", "C64"]:
        assert safetensors_dtype(torch_dtype(name)) == name


@pytest.mark.parametrize("name", ["F4", "F6_E2M3", "F6_E3M2", "X"])
def test_unsupported_dtype(name: str) -> None:
    with pytest.raises(CryptoTensorsError) as info:
        torch_dtype(name)
    assert info.value.code == "ERR_CT_UNSUPPORTED" and name in info.value.message


def test_views_share_memory_with_the_file(region_file: Path) -> None:
    mm = map_region(str(region_file), 4096)
    region_file.unlink()  # what the sidecar does after `mapped`: the mapping keeps the pages
    t = tensor_view(mm, offset=64, byte_size=24, dtype="F32", shape=[2, 3])
    assert t.shape == (2, 3) and t.dtype == torch.float32
    mm[64:68] = torch.tensor([1.5]).numpy().tobytes()
    assert t[0, 0].item() == 1.5  # a view, not a copy
    t[1, 2] = 7.0
    assert torch.frombuffer(mm, dtype=torch.float32, count=1, offset=64 + 20).item() == 7.0


def test_view_outlives_the_local_mmap_reference(region_file: Path) -> None:
    mm = map_region(str(region_file), 4096)
    mm[0:8] = (42).to_bytes(8, "little")
    t = tensor_view(mm, offset=0, byte_size=8, dtype="I64", shape=[])
    del mm
    gc.collect()
    assert t.item() == 42


def test_every_dtype_round_trips(region_file: Path) -> None:
    mm = map_region(str(region_file), 4096)
    offset = 0
    for name, src in sample_tensors().items():
        if name == "big":
            continue
        raw = src.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if src.numel() else b""
        mm[offset : offset + len(raw)] = raw
        view = tensor_view(mm, offset=offset, byte_size=len(raw), dtype=safetensors_dtype(src.dtype), shape=list(src.shape))
        assert bitwise_equal(view, src), name
        offset += (len(raw) + 63) // 64 * 64


def test_zero_element_tensor_is_a_fresh_empty_tensor() -> None:
    t = tensor_view(None, offset=0, byte_size=0, dtype="BF16", shape=[0, 5])
    assert t.shape == (0, 5) and t.dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("offset", "byte_size", "dtype", "shape", "needle"),
    [
        (0, 20, "F32", [2, 3], "needs 24 bytes"),
        (4090, 24, "F32", [2, 3], "outside"),
        (2, 4, "F32", [1], "not aligned"),
        (-8, 8, "I64", [1], "outside"),
    ],
)
def test_bad_placements(region_file: Path, offset: int, byte_size: int, dtype: str, shape: list[int], needle: str) -> None:
    mm = map_region(str(region_file), 4096)
    with pytest.raises(CryptoTensorsError) as info:
        tensor_view(mm, offset=offset, byte_size=byte_size, dtype=dtype, shape=shape)
    assert info.value.code == "ERR_CT_INTERNAL" and needle in info.value.message


def test_region_must_be_on_a_memory_file_system() -> None:
    """A region file on a disk (this test's own folder) is refused before it is opened, as is a
    relative path or one that leaves /dev/shm by `..`."""
    here = Path(__file__).resolve().parent
    assert _ram_file_system(str(here)) is None, "the checkout is expected on a disk file system"
    path = here / f"region-on-disk-{secrets.token_hex(4)}"
    path.write_bytes(b"\0" * 64)
    try:
        for bad in [str(path), "relative", f"/dev/shm/..{here}/{path.name}"]:
            with pytest.raises(CryptoTensorsError, match="not a file on a tmpfs or hugetlbfs mount"):
                map_region(bad, 64)
    finally:
        path.unlink()


def test_memory_file_systems_are_recognised() -> None:
    assert _ram_file_system("/dev/shm") == "tmpfs"
    assert _ram_file_system("/nonexistent-dir") is None


def test_region_symlink_is_refused(region_file: Path, tmp_path: Path) -> None:
    link = Path(f"/dev/shm/ctensors-test-link-{secrets.token_hex(4)}")
    link.symlink_to(region_file)
    try:
        with pytest.raises(CryptoTensorsError) as info:
            map_region(str(link), 64)
        assert info.value.code == "ERR_CT_IO"
    finally:
        link.unlink()


def test_region_smaller_than_announced(region_file: Path) -> None:
    with pytest.raises(CryptoTensorsError, match="fewer than the announced"):
        map_region(str(region_file), 8192)


def test_missing_region() -> None:
    with pytest.raises(CryptoTensorsError) as info:
        map_region(f"/dev/shm/ctensors-test-missing-{secrets.token_hex(4)}", 64)
    assert info.value.code == "ERR_CT_IO"


def test_mapping_does_not_use_the_resource_tracker(region_file: Path) -> None:
    code = (
        "from multiprocessing import resource_tracker\n"
        "def refuse(*args): raise AssertionError(f'registered with the resource tracker: {args}')\n"
        "resource_tracker.register = refuse\n"
        "from ctensors._shm import map_region, tensor_view\n"
        f"mm = map_region({str(region_file)!r}, 4096)\n"
        "t = tensor_view(mm, offset=0, byte_size=16, dtype='F32', shape=[4])\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    assert region_file.exists()  # nothing unlinked it at exit


@pytest.mark.parametrize(
    "shape",
    [[0, 2**63], [0, 2**64 - 1], [0, 2**62, 2**62], [0, 2**52, 2**52], [2**40, 0, 2**40, 2**40]],
)
def test_shapes_beyond_addressable_sizes_are_format_errors(shape: list[int]) -> None:
    # Each of these made torch raise its own TypeError/RuntimeError: a file's shape must fail as a typed error.
    with pytest.raises(CryptoTensorsError) as info:
        tensor_view(None, offset=0, byte_size=0, dtype="F32", shape=shape)
    assert info.value.code == "ERR_CT_FORMAT" and "beyond what torch can address" in info.value.message


def test_large_but_addressable_empty_shapes_still_work() -> None:
    t = tensor_view(None, offset=0, byte_size=0, dtype="F32", shape=[0, 2**31, 2**20])
    assert t.shape == (0, 2**31, 2**20)
    t = tensor_view(None, offset=0, byte_size=0, dtype="F32", shape=[2**40, 0, 2**40])  # strides fit
    assert t.shape == (2**40, 0, 2**40)
