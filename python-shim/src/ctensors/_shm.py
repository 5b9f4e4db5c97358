"""Shared-memory regions: map a region file the sidecar created and wrap its bytes as torch tensors.

Zero copy: `tensor_view` returns a view of the mapping (`torch.frombuffer`), never a copy, except for
0-element tensors, which are fresh `torch.empty` tensors (there are no bytes to share).

Lifetime: each view keeps a reference to the `mmap` object, and the pages stay mapped until the last
view is gone (the mmap is unmapped when it is garbage-collected). Never call `close()` on a region's
mmap while views exist: `torch.frombuffer` holds a reference, not a buffer export, so close() would
succeed and leave the views dangling. Plain `mmap` is used, not `multiprocessing.shared_memory`,
which registers segments with the resource tracker (warnings, and an unlink at exit).
"""

from __future__ import annotations

import ctypes
import functools
import math
import mmap
import os
import stat
from collections.abc import Sequence

import torch

from .errors import CryptoTensorsError

#: Where the sidecar places regions by default (tmpfs: plaintext never reaches a disk). It may be
#: configured to use another tmpfs or a hugetlbfs mount (`ctensors serve --shm-dir`); a region on any
#: other file system is refused (`_ram_file_system`).
SHM_DIR = "/dev/shm"

#: statfs f_type of the file systems whose files live in memory only (linux/magic.h).
_RAM_FILE_SYSTEMS = {0x01021994: "tmpfs", 0x958458F6: "hugetlbfs"}


class _StatFs(ctypes.Structure):
    # Only the leading f_type is read; the buffer is large enough for struct statfs on every Linux ABI.
    _fields_ = [("f_type", ctypes.c_long), ("_rest", ctypes.c_byte * 256)]


@functools.cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _ram_file_system(directory: str) -> str | None:
    """ "tmpfs" or "hugetlbfs" when `directory` is on one of them, else None (statfs f_type)."""
    buf = _StatFs()
    if _libc().statfs(os.fsencode(directory), ctypes.byref(buf)) != 0:
        return None
    return _RAM_FILE_SYSTEMS.get(buf.f_type & 0xFFFFFFFF)


def _dtype_table() -> dict[str, torch.dtype]:
    table = {
        "BOOL": torch.bool,
        "U8": torch.uint8,
        "I8": torch.int8,
        "I16": torch.int16,
        "I32": torch.int32,
        "I64": torch.int64,
        "F16": torch.float16,
        "BF16": torch.bfloat16,
        "F32": torch.float32,
        "F64": torch.float64,
        "C64": torch.complex64,
    }
    # Spelled as in safetensors; present only in torch builds that have them.
    optional = {
        "U16": "uint16",
        "U32": "uint32",
        "U64": "uint64",
        "F8_E4M3": "float8_e4m3fn",
        "F8_E5M2": "float8_e5m2",
        "F8_E8M0": "float8_e8m0fnu",
    }
    for name, attr in optional.items():
        dtype = getattr(torch, attr, None)
        if isinstance(dtype, torch.dtype):
            table[name] = dtype
    return table


#: safetensors dtype name -> torch dtype. Sub-byte types (F4, F6_*) have no element-wise torch
#: equivalent and are refused with ERR_CT_UNSUPPORTED.
DTYPES: dict[str, torch.dtype] = _dtype_table()
_NAMES: dict[torch.dtype, str] = {v: k for k, v in DTYPES.items()}


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a safetensors dtype name; CryptoTensorsError(ERR_CT_UNSUPPORTED) if none."""
    try:
        return DTYPES[name]
    except KeyError:
        raise CryptoTensorsError("ERR_CT_UNSUPPORTED", f"dtype {name!r} has no torch equivalent here") from None


def safetensors_dtype(dtype: torch.dtype) -> str:
    """The safetensors name of a torch dtype (inverse of torch_dtype)."""
    return _NAMES[dtype]


def map_region(path: str, size: int) -> mmap.mmap:
    """Maps `size` bytes of a region file read-write and shared (open O_RDWR, MAP_SHARED, close the fd).

    Only regular files (no symlink) at an absolute path in a directory on tmpfs or hugetlbfs are
    accepted (plaintext stays in memory), and the file must be at least `size` bytes (touching a
    mapping past the end of a file raises SIGBUS).
    """
    if size <= 0:
        raise _protocol(f"region {path} has size {size}")
    norm = os.path.normpath(path)
    if not os.path.isabs(path) or _ram_file_system(os.path.dirname(norm)) is None:
        raise _protocol(f"region path {path!r} is not a file on a tmpfs or hugetlbfs mount (memory only)")
    try:
        fd = os.open(norm, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as err:
        raise CryptoTensorsError("ERR_CT_IO", f"cannot open the shared-memory region {path}: {err}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise _protocol(f"region {path} is not a regular file")
        if st.st_size < size:
            raise _protocol(f"region {path} holds {st.st_size} bytes, fewer than the announced {size}")
        return mmap.mmap(fd, size, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)  # the mapping stays valid without it


def tensor_view(region: mmap.mmap | None, *, offset: int, byte_size: int, dtype: str, shape: Sequence[int]) -> torch.Tensor:
    """A tensor over `byte_size` bytes at `offset` in the region: a zero-copy view.

    The one exception: a 0-element tensor is a new `torch.empty(shape, dtype)` (frombuffer cannot
    make an empty view). The placement is checked against the dtype, the shape and the mapping.
    """
    tdtype = torch_dtype(dtype)
    dims = [int(d) for d in shape]
    itemsize = tdtype.itemsize
    check_addressable(dtype, dims)
    expected = math.prod(dims) * itemsize
    if byte_size != expected:
        raise _protocol(f"{dtype}{dims} needs {expected} bytes, the placement says {byte_size}")
    if expected == 0:
        return torch.empty(dims, dtype=tdtype)
    if region is None or offset < 0 or offset + byte_size > len(region):
        size = 0 if region is None else len(region)
        raise _protocol(f"bytes {offset}..{offset + byte_size} lie outside the {size}-byte region")
    if offset % itemsize:
        raise _protocol(f"offset {offset} is not aligned to the {itemsize}-byte {dtype} elements")
    flat = torch.frombuffer(region, dtype=torch.uint8, count=byte_size, offset=offset)
    return flat.view(tdtype).reshape(dims)


#: torch sizes and strides are signed 64-bit.
_MAX_SIZE = 2**63 - 1


def check_addressable(dtype: str, dims: Sequence[int]) -> None:
    """Raises CryptoTensorsError (ERR_CT_FORMAT) for a shape torch cannot address.

    Every size must fit, and torch computes the strides (in elements) from the sizes after the first
    with zeros counted as one, so even a 0-element tensor like [0, 2**40, 2**40] cannot be made;
    without this check torch raises its own RuntimeError or TypeError. (A non-empty tensor is bounded
    by its byte size, checked by the caller.)
    """
    too_big = any(d < 0 or d > _MAX_SIZE for d in dims)
    stride = 1
    for d in dims[1:]:
        stride *= max(d, 1)
    if too_big or stride > _MAX_SIZE:
        raise CryptoTensorsError("ERR_CT_FORMAT", f"tensor shape {dtype}{list(dims)} is beyond what torch can address (64-bit sizes)")


def _protocol(message: str) -> CryptoTensorsError:
    """The error for a sidecar that broke the Load protocol (also used by _loader)."""
    return CryptoTensorsError("ERR_CT_INTERNAL", f"sidecar protocol error: {message}")
