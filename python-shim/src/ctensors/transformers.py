"""Hugging Face transformers (5.x) integration: load an encrypted model folder through the sidecar.

Uses the public hook `Model.from_pretrained(None, config=..., state_dict=..., dtype=...)` with lazy,
shared-memory-backed values (the safetensors slice duck type: `__getitem__`, `get_shape()`,
`get_dtype()`); nothing in transformers is patched. Importing this module imports transformers.

Plain `AutoModel*.from_pretrained(encrypted_folder)` refuses: `ctensors encrypt` writes a
`transformers_weights` entry into config.json that transformers rejects before it reads any weight,
with a message naming this function (see `REFUSAL_KEY` and docs/python.md); this module drops it.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import torch

from ._extras import missing_extra

try:
    import transformers
except ModuleNotFoundError as _err:  # one line naming the extra to install, not a bare import error
    raise missing_extra(_err, "transformers", "transformers", "ctensors.transformers") from None

from ._api import LazyResidentModel, closing_model, model_source, weights_dtype
from ._client import SidecarClient
from ._target import InvalidArgumentError

#: The config.json attribute `ctensors encrypt` sets so that plain transformers refuses the folder.
REFUSAL_KEY = "transformers_weights"

__all__ = ["from_pretrained"]


def from_pretrained(
    path: str | os.PathLike[str],
    *,
    socket: str | os.PathLike[str] | None = None,
    model_class: Any = None,
    dtype: torch.dtype | str | None = None,
    revision: str | None = None,
    refresh: bool = False,
    **kwargs: Any,
) -> Any:
    """Loads a model whose weights are CryptoTensors files, decrypted by the sidecar.

    `path` is the local model folder (or one .safetensors file inside it), or a Hub model
    `org/name[@revision]` (or `revision=`, as in transformers) that the sidecar downloads into the HF
    cache (`refresh=True` picks up a newer commit than the one it pinned): config.json (and
    generation_config.json if present) are plaintext and read from that folder; the weights come
    from the sidecar. `model_class` defaults to AutoModelForCausalLM (an Auto class is resolved to
    the concrete class for the config first; models with remote code need their class passed);
    `dtype` defaults to the dtype holding most of the weights (pass one explicitly to convert, which
    copies; the deprecated `torch_dtype=` is accepted, as transformers does). Other keyword
    arguments go to `model_class.from_pretrained` (`config=` overrides the folder's).
    `model.config.name_or_path` is `path` as given, as transformers sets it.

    Memory: all tensors are decrypted in one RESIDENT stream when transformers materializes the
    first weight; when the dtype and device are unchanged the parameters are the zero-copy
    shared-memory views themselves (transformers' `.to()` is then a no-op), otherwise transformers
    converts them (a copy) and the shared memory is released.

    Raises CryptoTensorsError / SidecarUnavailableError (see ctensors.errors).
    """
    if "state_dict" in kwargs:
        raise TypeError("from_pretrained() builds state_dict itself; do not pass one")
    dtype = _dtype_argument(dtype, kwargs.pop("torch_dtype", None))
    config = kwargs.pop("config", None)
    name_or_path = os.fspath(path)
    source = model_source(path, revision)
    with SidecarClient(socket) as client:
        manifest = client.open_model(source, refresh=refresh)
        with closing_model(client, manifest.model_id):
            # The sidecar's folder: the local one, or the Hub snapshot (plaintext config, tokenizer).
            local = manifest.local_path or source  # (a sidecar before local_path: local paths only)
            folder = local if os.path.isdir(local) else os.path.dirname(local)
            config = transformers.AutoConfig.from_pretrained(folder) if config is None else copy.deepcopy(config)
            if hasattr(config, REFUSAL_KEY):
                delattr(config, REFUSAL_KEY)  # the weights come from state_dict, never from the folder
            model_class, config = _concrete_class(model_class or transformers.AutoModelForCausalLM, config)
            state_dict = LazyResidentModel(client, manifest.model_id).slices(manifest.tensors)
            if dtype is None or dtype == "auto":  # "auto" would probe the lazy values, which are not tensors
                dtype = weights_dtype(manifest.tensors)
            with _report_names(name_or_path):
                model = model_class.from_pretrained(None, config=config, state_dict=state_dict, dtype=dtype, **kwargs)
            del state_dict
    model.config.name_or_path = name_or_path  # transformers sets the path it was given: None here
    if os.path.isfile(os.path.join(folder, "generation_config.json")) and model.can_generate():
        # What from_pretrained does itself when it is given a folder.
        model.generation_config = transformers.GenerationConfig.from_pretrained(folder)
    return model


def _dtype_argument(dtype: torch.dtype | str | None, torch_dtype: torch.dtype | str | None) -> torch.dtype | str | None:
    """`dtype`, or the deprecated `torch_dtype` that transformers still accepts (with a warning)."""
    if torch_dtype is None:
        return dtype
    warnings.warn("`torch_dtype` is deprecated! Use `dtype` instead!", FutureWarning, stacklevel=3)
    if dtype is not None and dtype != torch_dtype:
        raise InvalidArgumentError(f"dtype={dtype!r} and torch_dtype={torch_dtype!r} disagree: pass dtype= only")
    return torch_dtype


class _ReportSource(logging.Filter):
    """Names the model in transformers' load report, which says `from: None` for a state_dict load."""

    def __init__(self, name_or_path: str) -> None:
        super().__init__()
        self._name = name_or_path

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and " LOAD REPORT" in record.msg and " from: None\n" in record.msg:
            record.msg = record.msg.replace(" from: None\n", f" from: {self._name} (decrypted by the ctensors sidecar)\n", 1)
        return True


@contextlib.contextmanager
def _report_names(name_or_path: str) -> Iterator[None]:
    logger = logging.getLogger("transformers.modeling_utils")
    report_filter = _ReportSource(name_or_path)
    logger.addFilter(report_filter)
    try:
        yield
    finally:
        logger.removeFilter(report_filter)


def _concrete_class(model_class: Any, config: Any) -> tuple[Any, Any]:
    """Resolves an Auto class to the concrete model class for `config`, as the Auto class would.

    Auto classes' from_pretrained resolves remote code from the model path first and does not
    accept None for it; the concrete classes do.
    """
    mapping = getattr(model_class, "_model_mapping", None)
    if mapping is None:
        return model_class, config
    try:
        supported = mapping[type(config)]
    except KeyError:
        raise ValueError(f"{model_class.__name__} has no model class for {type(config).__name__}; pass model_class=") from None
    if isinstance(supported, (list, tuple)):
        by_name = {cls.__name__: cls for cls in supported}
        archs = [a for a in (getattr(config, "architectures", None) or []) if a in by_name]
        supported = by_name[archs[0]] if archs else supported[0]
    text_config_class = getattr(config, "sub_configs", {}).get("text_config")
    if text_config_class is not None and getattr(supported, "config_class", None) == text_config_class:
        config = config.get_text_config()
    return supported, config
