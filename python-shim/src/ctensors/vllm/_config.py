"""`--model-loader-extra-config` of the `cryptotensors` load format: parsing and checking.

Pure Python (no vLLM import), so it is unit-tested without vLLM. Every key is optional:

| key            | meaning                                                                                |
|----------------|----------------------------------------------------------------------------------------|
| `source`       | what the sidecar opens (OpenModel `source`), passed through unchanged: an absolute local |
|                | folder, or a Hub repo id (`org/name`, `org/name@rev`). Default: vLLM's `--model`        |
|                | (a local folder is made absolute; a repo id gets `@<--revision>` when one is set).      |
| `revision`     | appended as `@revision` to a repo-id `source` that names none.                          |
| `socket`       | the sidecar's unix socket. Default: `$CTENSORS_SOCKET`, `$XDG_RUNTIME_DIR/ctensors/...`. |
| `mode`         | `"streaming"` (default: a bounded window of shared memory, reused) or `"resident"`       |
|                | (every tensor decrypted at once, zero copy; needs memory for the whole model).          |
| `copy`         | streaming only. `"auto"` (default): zero-copy views that stay valid as long as the      |
|                | model keeps them: a region is reused only once none of its tensors is alive, and one   |
|                | still in use is handed over to this process instead (its memory freed with its         |
|                | tensors). Falls back to `true` with a sidecar older than this mode.                    |
|                | `true`: each tensor is cloned before its region is reused.                             |
|                | `false`: zero-copy views valid until the next tensor (only for models whose            |
|                | `load_weights` copies each weight into its parameter right away and keeps none).       |
| `window_bytes`, `window_count` | streaming only: the window (0 or absent: the sidecar's defaults). The   |
|                | sidecar shrinks it to what /dev/shm holds (never below the largest tensor), so the      |
|                | default streaming mode loads a model of any size in a container's 64 MB /dev/shm.       |
| `strict`       | `true` (default): fail when a parameter of the model got no weight from the checkpoint. |
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ..errors import USAGE, CryptoTensorsError

MODES = ("streaming", "resident")
COPIES = (True, False, "auto")
KEYS = frozenset({"source", "revision", "socket", "mode", "copy", "window_bytes", "window_count", "strict"})


class ExtraConfigError(CryptoTensorsError, ValueError):
    """A bad `--model-loader-extra-config` for `--load-format cryptotensors` (code ERR_CT_USAGE)."""

    def __init__(self, message: str) -> None:
        super().__init__(USAGE, message)


@dataclass(frozen=True)
class LoaderConfig:
    source: str | None = None
    revision: str | None = None
    socket: str | None = None
    mode: str = "streaming"
    copy: bool | Literal["auto"] = "auto"
    window_bytes: int = 0
    window_count: int = 0
    strict: bool = True

    @classmethod
    def parse(cls, extra: Mapping[str, Any] | str | None) -> LoaderConfig:
        """Checks the extra config (a dict, a JSON object string, or None/empty) and fills defaults."""
        if extra is None or extra == "":
            return cls()
        if isinstance(extra, str):
            try:
                extra = json.loads(extra)
            except json.JSONDecodeError as err:
                raise ExtraConfigError(f"model_loader_extra_config is not valid JSON: {err}") from None
        if not isinstance(extra, Mapping):
            raise ExtraConfigError(
                f"model_loader_extra_config must be a JSON object for load format 'cryptotensors', got {type(extra).__name__}"
            )
        unknown = sorted(set(extra) - KEYS)
        if unknown:
            raise ExtraConfigError(
                f"unknown key(s) {unknown} in model_loader_extra_config for load format 'cryptotensors'; allowed: {sorted(KEYS)}"
            )
        mode = extra.get("mode", "streaming")
        if mode not in MODES:
            raise ExtraConfigError(f"mode must be one of {list(MODES)}, got {mode!r}")
        return cls(
            source=_opt_str(extra, "source"),
            revision=_opt_str(extra, "revision"),
            socket=_opt_str(extra, "socket"),
            mode=mode,
            copy=_copy(extra),
            window_bytes=_count(extra, "window_bytes"),
            window_count=_count(extra, "window_count"),
            strict=_bool(extra, "strict", True),
        )

    def model_source(self, model: str, revision: str | None = None) -> str:
        """The OpenModel source: `source` if given, else vLLM's `--model` (and `--revision`).

        A local path (one that exists, or that starts with / . or ~) becomes absolute, as the sidecar
        expects; anything else is taken as a repo id and passed through, with `@revision` appended
        when a revision is known and the id names none.
        """
        source = self.source if self.source is not None else model
        rev = self.revision if self.revision is not None else (None if self.source is not None else revision)
        if not source:
            raise ExtraConfigError("no model source: set --model or model_loader_extra_config.source")
        if _is_local(source):
            if self.revision is not None:
                raise ExtraConfigError(f"revision {self.revision!r} given for the local folder {source!r}")
            return os.path.abspath(os.path.expanduser(source))
        if rev and "@" not in source:
            return f"{source}@{rev}"
        return source


def _is_local(source: str) -> bool:
    return source.startswith(("/", "./", "../", "~")) or source in (".", "..") or os.path.exists(source)


def _opt_str(extra: Mapping[str, Any], key: str) -> str | None:
    value = extra.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ExtraConfigError(f"{key} must be a non-empty string, got {value!r}")
    return value


def _bool(extra: Mapping[str, Any], key: str, default: bool) -> bool:
    value = extra.get(key, default)
    if not isinstance(value, bool):
        raise ExtraConfigError(f"{key} must be true or false, got {value!r}")
    return value


def _copy(extra: Mapping[str, Any]) -> bool | Literal["auto"]:
    value = extra.get("copy", "auto")
    if value is True or value is False or value == "auto":
        return value  # type: ignore[no-any-return]
    raise ExtraConfigError(f'copy must be "auto", true or false, got {value!r}')


def _count(extra: Mapping[str, Any], key: str) -> int:
    value = extra.get(key, 0)
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ExtraConfigError(f"{key} must be a non-negative integer, got {value!r}")
    return value
