"""The vLLM-independent half of the loader: open a model in the sidecar, stream its tensors, check
that the model got every weight. Unit-tested against the fake sidecar (tests/test_vllm_loader.py).
"""

from __future__ import annotations

import contextlib
from collections.abc import Generator, Iterable, Iterator
from types import TracebackType

import torch

from .. import _loader
from .._client import SidecarClient
from .._proto import sidecar_pb2 as pb
from .._target import Target
from ..errors import FORMAT, CryptoTensorsError
from ._config import LoaderConfig

_MAX_LISTED = 20


class MissingWeightsError(CryptoTensorsError, ValueError):
    """The model has parameters that no tensor of the checkpoint initialized (code ERR_CT_FORMAT)."""

    def __init__(self, source: str, missing: Iterable[str]) -> None:
        self.missing = sorted(missing)
        shown = ", ".join(self.missing[:_MAX_LISTED])
        more = f" (and {len(self.missing) - _MAX_LISTED} more)" if len(self.missing) > _MAX_LISTED else ""
        super().__init__(
            FORMAT,
            f"load format 'cryptotensors': {len(self.missing)} weight(s) of the model were not in the "
            f"checkpoint served for {source!r}: {shown}{more}. Is --model the same model as the encrypted "
            "source? (set model_loader_extra_config.strict=false to accept this)",
        )


class CheckpointWeights:
    """One model opened in the sidecar (OpenModel ... CloseModel); use as a context manager.

    `weights()` yields (name, tensor) in file order, in the configured mode. Sidecar failures are
    CryptoTensorsError (with `.code`), with a note naming the source and the socket.
    """

    def __init__(self, source: str, config: LoaderConfig) -> None:
        self.source = source
        self.config = config
        self._client: SidecarClient | None = None
        self._manifest: pb.OpenModelResponse | None = None
        self.yielded: set[str] = set()

    def __enter__(self) -> CheckpointWeights:
        with self._context():
            client = SidecarClient(self.config.socket)
            try:
                self._manifest = client.open_model(self.source)
            except BaseException:
                client.close()
                raise
            self._client = client
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            assert self._manifest is not None
            if exc_type is None:
                with self._context():
                    client.close_model(self._manifest.model_id)
            else:
                with contextlib.suppress(Exception):  # keep the original error
                    client.close_model(self._manifest.model_id)
        finally:
            client.close()

    @property
    def names(self) -> list[str]:
        """Tensor names in file order (from the manifest)."""
        assert self._manifest is not None, "not open"
        return [t.name for t in self._manifest.tensors]

    @property
    def total_bytes(self) -> int:
        assert self._manifest is not None, "not open"
        return int(self._manifest.total_bytes)

    def weights(self, device: torch.device | None = None) -> Generator[tuple[str, torch.Tensor], None, None]:
        """With a CUDA `device` (the model's), each tensor is yielded already there: copied from the
        shared-memory window through pinned memory (_target.Target.convert), so vLLM's weight loaders
        copy device to device; streaming then needs no host clone (the window is released once the copy
        is staged)."""
        if self._client is None or self._manifest is None:
            raise ValueError("CheckpointWeights is not open")
        if device is not None and device.type == "cuda":
            yield from self._to_device(device)
            return
        client, model_id = self._client, self._manifest.model_id
        with self._context():
            if self.config.mode == "resident":
                tensors = _loader.load_resident(client, model_id)
                for name in self.names:
                    tensor = tensors.pop(name)
                    self.yielded.add(name)
                    yield name, tensor
                    del tensor
                return
            items = _loader.stream(
                client,
                model_id,
                copy=self.config.copy,
                window_bytes=self.config.window_bytes,
                window_count=self.config.window_count,
            )
            try:
                for name, tensor in items:
                    self.yielded.add(name)
                    yield name, tensor
            finally:
                items.close()

    def _to_device(self, device: torch.device) -> Generator[tuple[str, torch.Tensor], None, None]:
        assert self._client is not None and self._manifest is not None
        place = Target("pt", device)
        with self._context():
            if self.config.mode == "resident":
                tensors = _loader.load_resident(self._client, self._manifest.model_id)
                for name in self.names:
                    tensor = place.convert(name, tensors.pop(name))
                    self.yielded.add(name)
                    yield name, tensor
                    del tensor
                return
            items = _loader.stream(
                self._client,
                self._manifest.model_id,
                copy=False,  # each view is staged into pinned memory before the next item releases the window
                window_bytes=self.config.window_bytes,
                window_count=self.config.window_count,
            )
            try:
                for name, view in items:
                    tensor = place.convert(name, view)
                    del view
                    self.yielded.add(name)
                    yield name, tensor
                    del tensor
            finally:
                items.close()

    @contextlib.contextmanager
    def _context(self) -> Iterator[None]:
        try:
            yield
        except CryptoTensorsError as err:
            if hasattr(err, "add_note"):
                err.add_note(
                    f"(load format 'cryptotensors': model source {self.source!r}, sidecar socket "
                    f"{self.config.socket or 'default'}; set model_loader_extra_config.socket/source, "
                    "or start vLLM with `ctensors vllm`)"
                )
            raise


def check_loaded(source: str, expected: Iterable[str], loaded: set[str] | None, *, strict: bool) -> set[str]:
    """The expected parameter names that `model.load_weights` did not report as loaded.

    Raises MissingWeightsError when there are any and `strict`. `loaded` None (a model that does not
    report what it loaded) checks nothing.
    """
    if loaded is None:
        return set()
    missing = set(expected) - set(loaded)
    if missing and strict:
        raise MissingWeightsError(source, missing)
    return missing
