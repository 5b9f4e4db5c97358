"""An in-process stand-in for the TypeScript sidecar, for unit tests of the client side.

It serves plaintext tensors (no crypto) with the real protocol: the token file beside the socket,
`authorization` metadata, `ct-error-code` trailers, regions as 0600 files under /dev/shm that are
unlinked on `mapped`, 64-byte aligned placements, streaming windows reused after `consumed` (later
RegionReady messages for a region carry an empty path), and a final `done`. It records every client
message so tests can check the client's half of the protocol. Faults are injected with `fault=`.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import torch

from ctensors._proto import sidecar_pb2 as pb
from ctensors._proto import sidecar_pb2_grpc
from ctensors._shm import safetensors_dtype

ALIGN = 64
REGION_PREFIX = "ctensors-fake-"


def _align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


@dataclass
class FakeModel:
    tensors: dict[str, torch.Tensor]
    metadata: dict[str, str] = field(default_factory=lambda: {"format": "pt"})
    #: What OpenModel reports as local_path ("" = the source itself).
    local_path: str = ""


class _AbortError(Exception):
    def __init__(self, status: grpc.StatusCode, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class FakeSidecar(sidecar_pb2_grpc.SidecarServicer):
    """Serve with `FakeSidecar(socket, models).start()`; `stop()` when done.

    models: source path -> FakeModel. resident_region_bytes splits a resident load into regions of at
    most that many bytes (0 = one region). Faults: "path_outside_shm", "no_done", "bad_done_count",
    "unknown_region", "bad_offset", "short_file", "abort_mid_load".
    """

    def __init__(
        self,
        socket: str,
        models: dict[str, FakeModel],
        *,
        resident_region_bytes: int = 0,
        default_window_bytes: int = 1024,
        default_window_count: int = 2,
        fault: str | None = None,
    ) -> None:
        self.socket = socket
        self.models = models
        self.resident_region_bytes = resident_region_bytes
        self.default_window_bytes = default_window_bytes
        self.default_window_count = default_window_count
        self.fault = fault
        self.token = secrets.token_hex(32)
        self.client_messages: list[tuple[str, int]] = []  # ("mapped" | "consumed", region_id)
        self.ready_paths: list[tuple[int, str]] = []  # (region_id, path) per RegionReady sent
        self.created: list[str] = []
        self.open_calls: list[str] = []
        self.closed_models: list[str] = []
        self.load_finished = threading.Event()
        self._ids: dict[str, str] = {}
        self._early: dict[int, set[tuple[str, int]]] = {}
        self._server: grpc.Server | None = None

    # --- lifecycle ---
    def start(self) -> FakeSidecar:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        sidecar_pb2_grpc.add_SidecarServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"unix:{self.socket}")
        self._server.start()
        fd = os.open(self.socket + ".token", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(self.token)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
        for path in self.created:
            if os.path.exists(path):
                os.unlink(path)

    # --- helpers ---
    def _check(self, context: grpc.ServicerContext) -> None:
        md = dict(context.invocation_metadata())
        if md.get("authorization") != f"Bearer {self.token}":
            raise _AbortError(grpc.StatusCode.UNAUTHENTICATED, "ERR_CT_UNAUTHENTICATED", "missing or wrong token")

    @staticmethod
    def _abort(context: grpc.ServicerContext, err: _AbortError) -> None:
        context.set_trailing_metadata((("ct-error-code", err.code),))
        context.abort(err.status, err.message)

    def _model(self, model_id: str) -> FakeModel:
        for source, mid in self._ids.items():
            if mid == model_id:
                return self.models[source]
        raise _AbortError(grpc.StatusCode.NOT_FOUND, "ERR_CT_MODEL_NOT_OPEN", f"model {model_id} is not open")

    def _new_region(self, size: int) -> tuple[str, int]:
        path = f"/dev/shm/{REGION_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        os.ftruncate(fd, size - (ALIGN if self.fault == "short_file" else 0))
        self.created.append(path)
        return path, fd

    # --- RPCs ---
    def Health(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> pb.HealthResponse:
        try:
            self._check(context)
        except _AbortError as err:
            self._abort(context, err)
        return pb.HealthResponse(version="fake", open_models=sorted(self._ids))

    def OpenModel(self, request: pb.OpenModelRequest, context: grpc.ServicerContext) -> pb.OpenModelResponse:
        try:
            self._check(context)
            self.open_calls.append(request.source)
            if request.source not in self.models:
                raise _AbortError(grpc.StatusCode.NOT_FOUND, "ERR_CT_IO", f"no model at {request.source}")
        except _AbortError as err:
            self._abort(context, err)
        model = self.models[request.source]
        model_id = self._ids.setdefault(request.source, f"m{len(self._ids) + 1}")
        infos = [
            pb.TensorInfo(
                name=name,
                dtype=safetensors_dtype(t.dtype),
                shape=list(t.shape),
                byte_size=t.numel() * t.element_size(),
                encrypted=True,
                file="model.safetensors",
            )
            for name, t in model.tensors.items()
        ]
        return pb.OpenModelResponse(
            model_id=model_id,
            tensors=infos,
            metadata=model.metadata,
            total_bytes=sum(i.byte_size for i in infos),
            local_path=model.local_path or request.source,
        )

    def CloseModel(self, request: pb.CloseModelRequest, context: grpc.ServicerContext) -> pb.CloseModelResponse:
        try:
            self._check(context)
            self._model(request.model_id)
        except _AbortError as err:
            self._abort(context, err)
        self.closed_models.append(request.model_id)
        return pb.CloseModelResponse()

    def Load(self, request_iterator: Iterator[pb.LoadClientMessage], context: grpc.ServicerContext) -> Iterator[pb.LoadServerMessage]:
        pending: list[str] = []  # created, not yet unlinked
        try:
            self._check(context)
            first = next(request_iterator)
            if first.WhichOneof("msg") != "start":
                raise _AbortError(grpc.StatusCode.INVALID_ARGUMENT, "ERR_CT_BAD_REQUEST", "first message must be start")
            start = first.start
            model = self._model(start.model_id)
            names = list(start.names) or list(model.tensors)
            for name in names:
                if name not in model.tensors:
                    raise _AbortError(grpc.StatusCode.NOT_FOUND, "ERR_CT_BAD_REQUEST", f"no tensor {name}")
            tensors = [(n, model.tensors[n]) for n in names]
            if start.mode == pb.LOAD_MODE_RESIDENT:
                yield from self._resident(tensors, request_iterator, pending)
            elif start.mode == pb.LOAD_MODE_STREAMING:
                window = max(
                    start.window_bytes or self.default_window_bytes, max((_align(len(_bytes(t))) for _, t in tensors), default=ALIGN)
                )
                yield from self._streaming(tensors, request_iterator, pending, window, start.window_count or self.default_window_count)
            else:
                raise _AbortError(grpc.StatusCode.INVALID_ARGUMENT, "ERR_CT_BAD_REQUEST", "mode")
            if self.fault == "no_done":
                return
            count = len(tensors) + (1 if self.fault == "bad_done_count" else 0)
            total = sum(len(_bytes(t)) for _, t in tensors)
            yield pb.LoadServerMessage(done=pb.LoadDone(tensors=count, bytes=total))
        except _AbortError as err:
            self._abort(context, err)
        finally:
            for path in pending:  # the client went away before mapping: release
                if os.path.exists(path):
                    os.unlink(path)
            self.load_finished.set()

    def _expect(self, request_iterator: Iterator[pb.LoadClientMessage], kind: str, region_id: int) -> None:
        # Messages that arrive early (e.g. `consumed` for another region) are kept for later.
        early = self._early.setdefault(id(request_iterator), set())
        if (kind, region_id) in early:
            early.discard((kind, region_id))
            return
        for msg in request_iterator:
            which = msg.WhichOneof("msg")
            rid = getattr(msg, which).region_id
            self.client_messages.append((which, rid))
            if which == kind and rid == region_id:
                return
            early.add((which, rid))
        raise _AbortError(grpc.StatusCode.CANCELLED, "ERR_CT_BAD_REQUEST", "client went away")

    def _place(self, tensors, base_offset=0):  # type: ignore[no-untyped-def]
        placements, offset, blobs = [], base_offset, []
        for name, t in tensors:
            data = _bytes(t)
            off = offset + (4 if self.fault == "bad_offset" and t.element_size() > 1 else 0)
            placements.append(
                pb.TensorPlacement(name=name, dtype=safetensors_dtype(t.dtype), shape=list(t.shape), offset=off, byte_size=len(data))
            )
            blobs.append((off, data))
            offset = _align(offset + len(data))
        return placements, blobs, offset

    def _resident(self, tensors, request_iterator, pending):  # type: ignore[no-untyped-def]
        groups: list[list] = [[]]
        size = 0
        for item in tensors:
            need = _align(len(_bytes(item[1])))
            if self.resident_region_bytes and groups[-1] and size + need > self.resident_region_bytes:
                groups.append([])
                size = 0
            groups[-1].append(item)
            size += need
        for rid, group in enumerate(groups, start=1):
            placements, blobs, end = self._place(group)
            path, fd = self._new_region(max(end, ALIGN))
            pending.append(path)
            for off, data in blobs:
                os.pwrite(fd, data, off)
            os.close(fd)
            sent_path = "/tmp/not-shm" if self.fault == "path_outside_shm" else path
            self.ready_paths.append((rid, sent_path))
            yield pb.LoadServerMessage(
                ready=pb.RegionReady(region_id=rid, path=sent_path, region_bytes=max(end, ALIGN), tensors=placements)
            )
            self._expect(request_iterator, "mapped", rid)
            os.unlink(path)
            pending.remove(path)
            if self.fault == "abort_mid_load":  # after the first region was mapped
                raise _AbortError(grpc.StatusCode.DATA_LOSS, "ERR_CT_DECRYPTION_FAILED", "decryption failed")

    def _streaming(self, tensors, request_iterator, pending, window, count):  # type: ignore[no-untyped-def]
        batches: list[list] = [[]]
        size = 0
        for item in tensors:
            need = _align(len(_bytes(item[1])))
            if batches[-1] and size + need > window:
                batches.append([])
                size = 0
            batches[-1].append(item)
            size += need
        regions: dict[int, int] = {}  # region_id -> fd (kept: the server refills through it)
        busy: list[int] = []
        try:
            for i, batch in enumerate(batches):
                rid = i % count + 1
                if rid in busy:
                    self._expect(request_iterator, "consumed", rid)
                    busy.remove(rid)
                placements, blobs, _end = self._place(batch)
                path = ""
                if rid not in regions:
                    path, regions[rid] = self._new_region(window)
                    pending.append(path)
                for off, data in blobs:
                    os.pwrite(regions[rid], data, off)
                announced = 99 if self.fault == "unknown_region" and i == count else rid
                self.ready_paths.append((announced, path))
                yield pb.LoadServerMessage(ready=pb.RegionReady(region_id=announced, path=path, region_bytes=window, tensors=placements))
                if path:
                    self._expect(request_iterator, "mapped", rid)
                    os.unlink(path)
                    pending.remove(path)
                busy.append(rid)
        finally:
            for fd in regions.values():
                os.close(fd)
