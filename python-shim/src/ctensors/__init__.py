"""ctensors: load CryptoTensors (encrypted safetensors) models without holding a key.

Three parts: the sidecar (TypeScript, holds the keys) verifies and decrypts; the control plane is
gRPC on a unix socket (`_client`, with the stubs in `_proto`); the bytes travel through shared-memory
regions under /dev/shm that this package maps and wraps as torch tensors without copying
(`_shm`, `_loader`). On top: a safetensors-like API (`load_file`, `safe_open`) and the transformers
integration (`ctensors.transformers.from_pretrained`, imported on first use).
"""

import importlib as _importlib
from typing import Any as _Any

from ._api import load_file, safe_open
from ._client import default_socket_path
from ._version import __version__
from .errors import CryptoTensorsError

__all__ = ["CryptoTensorsError", "__version__", "default_socket_path", "load_file", "safe_open"]

_LAZY_SUBMODULES = ("transformers", "vllm")


def __getattr__(name: str) -> _Any:
    # `ctensors.transformers` imports transformers (slow, optional): only on first use. `ctensors.vllm`
    # never imports vLLM at import time, but stays out of `import ctensors` as well.
    if name in _LAZY_SUBMODULES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY_SUBMODULES])
