"""The safetensors-like API: `load_file`, `safe_open` and the lazy slice type they share with
ctensors.transformers. Every function here talks to the sidecar; none sees a key.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

import torch

from . import _loader
from ._client import SidecarClient
from ._proto import sidecar_pb2 as pb
from ._shm import DTYPES
from ._target import InvalidArgumentError, Target, target


# A Hub model reference, as the sidecar parses it (plugin/src/hub/repo-ref.ts): org/name[@revision].
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?"
_REVISION = r"[A-Za-z0-9._/-]{1,255}"
_REPO_REF = re.compile(rf"({_PART}/{_PART})(?:@({_REVISION}))?")


def model_source(path: str | os.PathLike[str], revision: str | None = None) -> str:
    """The OpenModel source for `path`: an existing local path made absolute (as the sidecar
    expects), else a Hub model reference `org/name[@revision]` (with `@revision` added when
    `revision` is given), else the absolute path (the sidecar then says it does not exist). Like
    transformers, a local folder wins over a repo id.

    Raises InvalidArgumentError (ERR_CT_USAGE) when `revision` is given for a local path (it has no
    revisions), contradicts the `@revision` of `path`, or is not a branch, tag or commit name.
    """
    text = os.fspath(path)
    ref = None if os.path.exists(text) or not isinstance(text, str) else _REPO_REF.fullmatch(text)
    if revision is not None:
        if not isinstance(revision, str) or not re.fullmatch(_REVISION, revision):
            raise InvalidArgumentError(f"revision {revision!r} is not a branch, tag or commit name")
        if ref is None:
            raise InvalidArgumentError(f"revision={revision!r} was given for the local path {text!r}, which has no revisions")
        if ref.group(2) is not None and ref.group(2) != revision:
            raise InvalidArgumentError(f"{text!r} names revision {ref.group(2)!r} but revision={revision!r} was given")
        return f"{ref.group(1)}@{revision}"
    return text if ref is not None else os.path.abspath(text)


def load_file(
    path: str | os.PathLike[str],
    device: str | int | torch.device = "cpu",
    *,
    revision: str | None = None,
    socket: str | os.PathLike[str] | None = None,
    refresh: bool = False,
) -> dict[str, torch.Tensor]:
    """Loads every tensor of a CryptoTensors file or model folder, like safetensors.torch.load_file.

    `path` may also be a Hub model `org/name` or `org/name@revision` (or `revision=`, as in Hugging
    Face libraries): the sidecar downloads it into the HF cache (encrypted at rest) and pins the
    commit it resolved to; `refresh=True` asks the Hub again for a newer commit.

    device="cpu" (default): the sidecar verifies and decrypts into shared memory (RESIDENT mode);
    the returned tensors are zero-copy views of it (0-element tensors excepted), writable, and the
    memory is released when the last tensor of a region is garbage-collected. A CUDA device
    ("cuda", "cuda:1", or an index): the tensors are streamed through a bounded shared-memory window
    and copied to the GPU through pinned memory; nothing stays in shared memory.

    Raises CryptoTensorsError (`.code` says why: ERR_CT_SIGNATURE_INVALID, ERR_CT_KEY_NOT_FOUND,
    ERR_CT_POLICY_DENIED, ERR_CT_USAGE for a bad device or revision, ...) and
    SidecarUnavailableError when no sidecar answers on the socket.
    """
    place = target("pt", device)
    source = model_source(path, revision)
    with SidecarClient(socket) as client:
        manifest = client.open_model(source, refresh=refresh)
        with closing_model(client, manifest.model_id):
            if place.zero_copy:
                return _loader.load_resident(client, manifest.model_id)
            return {name: place.convert(name, view) for name, view in _loader.stream(client, manifest.model_id, copy=False)}


class TensorSlice:
    """A lazy, shared-memory-backed tensor with the safetensors slice interface.

    `get_shape()` and `get_dtype()` answer from the manifest without loading anything;
    `slice[...]`/`slice[0:2, :]` loads the whole tensor on first use (once; later indexing reuses
    it) and indexes it: basic indexing returns views, so `[...]` is zero-copy.
    """

    __slots__ = ("_dtype", "_load", "_lock", "_name", "_shape", "_tensor")

    def __init__(self, name: str, dtype: str, shape: Iterable[int], load: Callable[[], torch.Tensor]) -> None:
        self._name = name
        self._dtype = dtype
        self._shape = [int(d) for d in shape]
        self._load: Callable[[], torch.Tensor] | None = load
        self._tensor: torch.Tensor | None = None
        self._lock = threading.Lock()

    def get_shape(self) -> list[int]:
        return list(self._shape)

    def get_dtype(self) -> str:
        """The safetensors dtype name ("F32", "BF16", ...)."""
        return self._dtype

    def __getitem__(self, index: Any) -> torch.Tensor:
        return self._materialize()[index]

    def __repr__(self) -> str:
        state = "loaded" if self._tensor is not None else "not loaded"
        return f"TensorSlice({self._name!r}, dtype={self._dtype}, shape={self._shape}, {state})"

    def _materialize(self) -> torch.Tensor:
        with self._lock:
            if self._tensor is None:
                assert self._load is not None
                self._tensor = self._load()
                self._load = None  # drop what the loader holds on to
            return self._tensor


class safe_open:  # noqa: N801 -- named after safetensors.safe_open, which it mirrors
    """Opens a CryptoTensors file or model folder through the sidecar, like safetensors.safe_open.

    Use as a context manager (or call close()). The sidecar verifies the model and evaluates its
    policy at open time, so a refusal raises here (CryptoTensorsError). Tensors are loaded on
    demand: `get_tensor(name)` asks the sidecar for that one tensor (RESIDENT mode, zero copy on the
    CPU), and tensors stay valid after the handle is closed. `stream()` reads many tensors in
    STREAMING mode. `framework` is "pt" (torch tensors) or "numpy" (arrays sharing the same memory);
    `device` is "cpu" or a CUDA device ("cuda", "cuda:1", an index: a copy through pinned memory),
    as in safetensors. `path` may be a Hub model `org/name[@revision]` or take `revision=` (see
    load_file); `local_path` is then the snapshot folder in the HF cache, `commit` the pinned commit.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        framework: str = "pt",
        device: str | int | torch.device = "cpu",
        *,
        revision: str | None = None,
        socket: str | os.PathLike[str] | None = None,
        refresh: bool = False,
    ) -> None:
        self._client: SidecarClient | None = None
        self._target: Target = target(framework, device)
        source = model_source(path, revision)
        client = SidecarClient(socket)
        try:
            self._manifest: pb.OpenModelResponse = client.open_model(source, refresh=refresh)
        except BaseException:
            client.close()
            raise
        self._client = client
        self._infos = {t.name: t for t in self._manifest.tensors}

    def keys(self) -> list[str]:
        """Tensor names, sorted (as safetensors does)."""
        return sorted(self._infos)

    def offset_keys(self) -> list[str]:
        """Tensor names in file order (shard by shard, by offset)."""
        return [t.name for t in self._manifest.tensors]

    def metadata(self) -> dict[str, str] | None:
        """The user metadata of the (first) shard, e.g. {"format": "pt"}; None when there is none."""
        return dict(self._manifest.metadata) or None

    @property
    def local_path(self) -> str:
        """The local file or folder the sidecar reads (for a Hub model: its snapshot in the HF cache)."""
        return self._manifest.local_path

    @property
    def commit(self) -> str | None:
        """For a Hub model, the commit the sidecar pinned; None for a local path."""
        return self._manifest.commit or None

    def get_tensor(self, name: str) -> Any:
        """Loads one tensor: on the CPU a zero-copy view of shared memory (a 0-element tensor is a new
        empty one), on a CUDA device a copy there; a numpy array with framework="numpy"."""
        client = self._open_client()
        self._info(name)
        view = _loader.load_resident(client, self._manifest.model_id, [name])[name]
        return self._target.convert(name, view)

    def get_slice(self, name: str) -> TensorSlice:
        """A lazy slice: shape and dtype without loading; indexing loads the tensor (see TensorSlice)."""
        info = self._info(name)
        return TensorSlice(name, info.dtype, info.shape, lambda: self.get_tensor(name))

    def stream(
        self,
        names: Iterable[str] | None = None,
        *,
        copy: _loader.Copy = True,
        window_bytes: int | None = None,
        window_count: int | None = None,
    ) -> Iterator[tuple[str, torch.Tensor]]:
        """Yields (name, tensor) for `names` (default: all, in file order) in STREAMING mode, placed
        as the handle's framework and device say (on a CUDA device every tensor is a copy there).

        Shared memory stays bounded by the window (window_bytes per region, default 256 MiB and at
        least the largest tensor; window_count regions, default 2: the sidecar's defaults).
        copy=True (default): every tensor is a clone, made before the region is handed back, so it
        can be kept. copy="auto": zero-copy views that stay valid as long as they are referenced (a
        region still in use is kept by this process instead of being refilled; with a sidecar that
        cannot do that, clones as copy=True). copy=False: zero-copy views, each valid only until the
        next item is requested (for consumers that copy right away, e.g. into model parameters).
        Exhaust or close() the generator to end the call.
        """
        client = self._open_client()
        wanted = [] if names is None else list(names)
        for name in wanted:
            self._info(name)
        place = self._target
        items = _loader.stream(
            client,
            self._manifest.model_id,
            wanted,
            copy=copy if place.zero_copy else False,  # a device copy is a copy already
            window_bytes=window_bytes or 0,
            window_count=window_count or 0,
        )
        if place.framework == "pt" and place.zero_copy:
            return items
        return _placed(items, place)

    def close(self) -> None:
        """Forgets the model in the sidecar and closes the channel. Loaded tensors stay valid."""
        client, self._client = self._client, None
        if client is not None:
            try:
                client.close_model(self._manifest.model_id)
            finally:
                client.close()

    def __enter__(self) -> safe_open:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            with contextlib.suppress(Exception):  # keep the original error
                self.close()

    def _open_client(self) -> SidecarClient:
        if self._client is None:
            raise ValueError("this safe_open handle is closed")
        return self._client

    def _info(self, name: str) -> pb.TensorInfo:
        try:
            return self._infos[name]
        except KeyError:
            raise KeyError(f"no tensor named {name!r} in this model") from None


def _placed(items: Iterator[tuple[str, torch.Tensor]], place: Target) -> Iterator[tuple[str, Any]]:
    """`items` converted by `place`; closing this generator closes (ends the call of) `items`."""
    try:
        for name, tensor in items:
            yield name, place.convert(name, tensor)
    finally:
        items.close()  # type: ignore[attr-defined]


class LazyResidentModel:
    """All tensors of an open model, loaded in one RESIDENT stream on the first request for any.

    Thread-safe (transformers materializes from a thread pool). `take(name)` hands a tensor over
    once and forgets it, so the caller's references decide how long each region stays mapped.
    """

    def __init__(self, client: SidecarClient, model_id: str) -> None:
        self._client = client
        self._model_id = model_id
        self._lock = threading.Lock()
        self._tensors: dict[str, torch.Tensor] | None = None

    def take(self, name: str) -> torch.Tensor:
        with self._lock:
            if self._tensors is None:
                self._tensors = _loader.load_resident(self._client, self._model_id)
            try:
                return self._tensors.pop(name)
            except KeyError:
                raise KeyError(f"tensor {name!r} was not sent, or was already taken") from None

    def slices(self, infos: Iterable[pb.TensorInfo]) -> dict[str, TensorSlice]:
        return {t.name: TensorSlice(t.name, t.dtype, t.shape, functools.partial(self.take, t.name)) for t in infos}


@contextlib.contextmanager
def closing_model(client: SidecarClient, model_id: str) -> Iterator[None]:
    """CloseModel on the way out; a failure to close does not hide an earlier error."""
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            client.close_model(model_id)
        raise
    client.close_model(model_id)


def weights_dtype(infos: Iterable[pb.TensorInfo]) -> torch.dtype:
    """The floating-point dtype holding most of the model's bytes (float32 if none is floating)."""
    totals: dict[torch.dtype, int] = {}
    for t in infos:
        dtype = DTYPES.get(t.dtype)
        if dtype is not None and dtype.is_floating_point:
            totals[dtype] = totals.get(dtype, 0) + t.byte_size
    return max(totals, key=lambda d: totals[d]) if totals else torch.float32
