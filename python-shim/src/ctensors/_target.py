"""Where loaded tensors go, as safetensors spells it: `framework` ("pt" or "numpy") and `device`
("cpu", "cuda", "cuda:1" or a CUDA index), checked before the sidecar is asked for anything.

On the CPU with framework "pt" the tensors are the zero-copy shared-memory views themselves. A CUDA
device gets a copy staged through pinned (page-locked) host memory, so the host-to-device transfer
is a DMA that runs asynchronously on the current stream; framework "numpy" gets numpy arrays that
share the tensors' memory (numpy has no bfloat16 or float8 types: those are refused).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .errors import UNSUPPORTED, USAGE, CryptoTensorsError

# safetensors' own spellings of the two frameworks this package serves.
_FRAMEWORKS = {"pt": "pt", "torch": "pt", "pytorch": "pt", "np": "numpy", "numpy": "numpy"}
_NO_NUMPY_TYPE = {torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2}


class InvalidArgumentError(CryptoTensorsError, ValueError):
    """An argument this package does not accept (ERR_CT_USAGE), e.g. device="meta"."""

    def __init__(self, message: str) -> None:
        super().__init__(USAGE, message)


class DeviceUnavailableError(CryptoTensorsError, RuntimeError):
    """The device asked for does not exist in this process (ERR_CT_UNSUPPORTED), e.g. CUDA on a CPU-only torch."""

    def __init__(self, message: str) -> None:
        super().__init__(UNSUPPORTED, message)


@dataclass(frozen=True)
class Target:
    framework: str  # "pt" | "numpy"
    device: torch.device

    @property
    def zero_copy(self) -> bool:
        """Whether the results may share memory with shared-memory views (CPU), or are copies (CUDA)."""
        return self.device.type == "cpu"

    def convert(self, name: str, tensor: torch.Tensor) -> Any:
        """`tensor` (a CPU tensor, usually a shared-memory view) placed where this target says."""
        if self.framework == "numpy":
            if tensor.dtype in _NO_NUMPY_TYPE:
                raise InvalidArgumentError(f"tensor {name!r} is {tensor.dtype}, which numpy has no type for: open it with framework='pt'")
            return tensor.numpy()
        if self.device.type == "cpu":
            return tensor
        if tensor.numel() == 0:
            return tensor.to(self.device)
        return tensor.pin_memory().to(self.device, non_blocking=True)


def target(framework: str = "pt", device: str | int | torch.device = "cpu") -> Target:
    """Checks `framework` and `device` as safetensors does, with typed errors.

    Raises InvalidArgumentError (an unknown framework or device, "meta", numpy on a GPU) and
    DeviceUnavailableError (CUDA asked for where this torch has none, or an index past the last GPU).
    """
    fw = _FRAMEWORKS.get(framework) if isinstance(framework, str) else None
    if fw is None:
        raise InvalidArgumentError(f"framework {framework!r} is not supported: use 'pt' or 'numpy'")
    dev = _device(device)
    if fw == "numpy" and dev.type != "cpu":
        raise InvalidArgumentError(f"framework 'numpy' loads to the CPU only, not to device {str(dev)!r}")
    return Target(fw, dev)


def _device(device: str | int | torch.device) -> torch.device:
    if isinstance(device, bool):
        raise InvalidArgumentError(f"device {device!r} is invalid: use 'cpu', 'cuda', 'cuda:N' or a CUDA index")
    try:
        dev = torch.device("cuda", device) if isinstance(device, int) else torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise InvalidArgumentError(f"device {device!r} is invalid: use 'cpu', 'cuda', 'cuda:N' or a CUDA index") from None
    if dev.type == "cpu":
        return torch.device("cpu")
    if dev.type != "cuda":
        raise InvalidArgumentError(f"device {str(dev)!r} is not supported: tensors are loaded to 'cpu' or to a CUDA device")
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(
            f"device {str(dev)!r} was asked for, but CUDA is not available to this process "
            f"(torch {torch.__version__}): load to device='cpu', or use a CUDA build of torch on a machine with a GPU"
        )
    index = torch.cuda.current_device() if dev.index is None else dev.index
    if not 0 <= index < torch.cuda.device_count():
        raise DeviceUnavailableError(f"device {str(dev)!r} was asked for, but this process sees {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)
