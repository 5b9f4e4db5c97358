"""Keeps vLLM's default loader away from encrypted weights.

A CryptoTensors file is a valid safetensors file whose tensor bytes are ciphertext: vLLM's default
loader (`--load-format auto|safetensors|...`, i.e. a forgotten `--load-format cryptotensors`) would
load it without complaint and serve a model of random weights. `install()` wraps
`DefaultModelLoader._prepare_weights` (which every DefaultModelLoader format goes through to list
the weight files, before any is read) so that it refuses such files with a clear error.
The header check itself (`is_cryptotensors_file`) is pure Python.
"""

from __future__ import annotations

import functools
import json
import os
import struct
from collections.abc import Iterable
from typing import Any

from ..errors import USAGE, CryptoTensorsError

_MAX_HEADER = 100 * 1024 * 1024  # safetensors' own cap
_MARKERS = ("__encryption__", "__crypto_keys__")
_WRAPPED = "__ctensors_guard__"


class EncryptedWeightsError(CryptoTensorsError, RuntimeError):
    """vLLM's default loader was about to read CryptoTensors (encrypted) weights as plaintext (ERR_CT_USAGE)."""

    def __init__(self, message: str) -> None:
        super().__init__(USAGE, message)


def is_cryptotensors_file(path: str | os.PathLike[str]) -> bool:
    """True when the safetensors header's `__metadata__` carries CryptoTensors' encryption fields.

    Reads only the header. A file that is not a readable safetensors file is not judged here (False):
    the loader that reads it reports that.
    """
    try:
        with open(path, "rb") as f:
            head = f.read(8)
            if len(head) != 8:
                return False
            (size,) = struct.unpack("<Q", head)
            if size > _MAX_HEADER:
                return False
            header = json.loads(f.read(size))
    except (OSError, ValueError):
        return False
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return isinstance(meta, dict) and any(k in meta for k in _MARKERS)


def refuse_encrypted(files: Iterable[str]) -> None:
    encrypted = [f for f in files if str(f).endswith(".safetensors") and is_cryptotensors_file(f)]
    if encrypted:
        raise EncryptedWeightsError(
            f"{encrypted[0]} is a CryptoTensors (encrypted) file"
            + (f" ({len(encrypted)} such files)" if len(encrypted) > 1 else "")
            + ": vLLM's default loader would read its ciphertext as weights. Load it through the ctensors "
            "sidecar with `--load-format cryptotensors` (e.g. `ctensors vllm -- <model> --load-format "
            "cryptotensors`), see docs/python.md#vllm."
        )


def install() -> bool:
    """Wraps DefaultModelLoader._prepare_weights once per process. False when this vLLM has no such
    method (the guard is then absent, which is logged by the caller)."""
    from vllm.model_executor.model_loader.default_loader import DefaultModelLoader

    original = getattr(DefaultModelLoader, "_prepare_weights", None)
    if original is None:
        return False
    if getattr(original, _WRAPPED, False):
        return True

    @functools.wraps(original)
    def _prepare_weights(self: Any, *args: Any, **kwargs: Any) -> Any:
        result = original(self, *args, **kwargs)
        files = result[1] if isinstance(result, tuple) and len(result) > 1 else result
        if isinstance(files, (list, tuple)):
            refuse_encrypted(str(f) for f in files)
        return result

    setattr(_prepare_weights, _WRAPPED, True)
    DefaultModelLoader._prepare_weights = _prepare_weights  # type: ignore[method-assign]
    return True
