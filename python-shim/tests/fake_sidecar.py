"""A scripted stand-in for the sidecar, only for the client-side tests the real sidecar cannot drive:
protocol violations (which the real sidecar never commits) and a RESIDENT load spread over several
regions (the real sidecar packs up to 1 GiB into one resident region, and `ctensors serve` has no
setting to lower that). Every other test runs against the real sidecar (conftest.start_sidecar).

It serves one model of plaintext tensors (no crypto) under any source. Load writes `regions` (groups
of tensor names; one region file under /dev/shm each, 64-byte aligned placements), announces each and
waits for the client's `mapped` before unlinking it, then sends `done`. It checks the token, records
what it sends and what the client sends, and injects one `fault`: "path_outside_shm", "no_done",
"bad_done_count", "bad_offset", "short_file" or "unknown_region" (a second region announced with no
path and an id the client never mapped).
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator, Sequence
from concurrent import futures

import grpc
import torch

from ctensors._proto import sidecar_pb2 as pb
from ctensors._version import __version__
from ctensors._proto import sidecar_pb2_grpc
from ctensors._shm import safetensors_dtype

ALIGN = 64
REGION_PREFIX = "ctensors-fake-"
MODEL_ID = "m1"


def _bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""


class FakeSidecar(sidecar_pb2_grpc.SidecarServicer):
    """`FakeSidecar(socket, tensors, regions=..., fault=...).start()`; `stop()` when done."""

    def __init__(
        self, socket: str, tensors: dict[str, torch.Tensor], regions: Sequence[Sequence[str]] = (), fault: str | None = None
    ) -> None:
        self.socket = socket
        self.tensors = tensors
        self.regions = [list(group) for group in regions] or [list(tensors)]
        self.fault = fault
        self.token = secrets.token_hex(32)
        self.client_messages: list[tuple[str, int]] = []  # ("mapped" | "consumed", region_id)
        self.ready_paths: list[tuple[int, str]] = []  # (region_id, path) per RegionReady sent
        self.closed_models: list[str] = []
        self.load_finished = threading.Event()
        self._created: list[str] = []
        self._server: grpc.Server | None = None

    def start(self) -> FakeSidecar:
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
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
        for path in self._created:
            if os.path.exists(path):
                os.unlink(path)

    def _check(self, context: grpc.ServicerContext) -> None:
        if dict(context.invocation_metadata()).get("authorization") != f"Bearer {self.token}":
            context.set_trailing_metadata((("ct-error-code", "ERR_CT_UNAUTHENTICATED"),))
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token")

    def Health(self, request: pb.HealthRequest, context: grpc.ServicerContext) -> pb.HealthResponse:
        # The client asks once before its first OpenModel (the release-line check): same version as the client.
        self._check(context)
        return pb.HealthResponse(version=__version__, require_encrypted=True)

    def OpenModel(self, request: pb.OpenModelRequest, context: grpc.ServicerContext) -> pb.OpenModelResponse:
        self._check(context)
        infos = [
            pb.TensorInfo(name=n, dtype=safetensors_dtype(t.dtype), shape=list(t.shape), byte_size=len(_bytes(t)), encrypted=True)
            for n, t in self.tensors.items()
        ]
        return pb.OpenModelResponse(model_id=MODEL_ID, tensors=infos, metadata={"format": "pt"}, local_path=request.source)

    def CloseModel(self, request: pb.CloseModelRequest, context: grpc.ServicerContext) -> pb.CloseModelResponse:
        self._check(context)
        self.closed_models.append(request.model_id)
        return pb.CloseModelResponse()

    def Load(self, request_iterator: Iterator[pb.LoadClientMessage], context: grpc.ServicerContext) -> Iterator[pb.LoadServerMessage]:
        try:
            self._check(context)
            next(request_iterator)  # start: every tensor, in the order of `regions`, whatever the mode
            for rid, names in enumerate(self.regions, start=1):
                path, ready = self._region(rid, names)
                if self.fault == "unknown_region" and rid == 2:
                    ready.region_id, ready.path = 99, ""
                self.ready_paths.append((ready.region_id, ready.path))
                yield pb.LoadServerMessage(ready=ready)
                if self._await_mapped(request_iterator, rid):
                    os.unlink(path)
            if self.fault == "no_done":
                return
            count = len(self.tensors) + (1 if self.fault == "bad_done_count" else 0)
            yield pb.LoadServerMessage(done=pb.LoadDone(tensors=count, bytes=sum(len(_bytes(t)) for t in self.tensors.values())))
        finally:
            self.load_finished.set()

    def _region(self, rid: int, names: list[str]) -> tuple[str, pb.RegionReady]:
        placements, blobs, offset = [], [], 0
        for name in names:
            t, data = self.tensors[name], _bytes(self.tensors[name])
            off = offset + (4 if self.fault == "bad_offset" and t.element_size() > 1 else 0)
            placements.append(
                pb.TensorPlacement(name=name, dtype=safetensors_dtype(t.dtype), shape=list(t.shape), offset=off, byte_size=len(data))
            )
            blobs.append((off, data))
            offset = (offset + len(data) + ALIGN - 1) // ALIGN * ALIGN
        size = max(offset, ALIGN)
        path = f"/dev/shm/{REGION_PREFIX}{secrets.token_hex(8)}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        self._created.append(path)
        try:
            os.ftruncate(fd, size - (ALIGN if self.fault == "short_file" else 0))
            for off, data in blobs:
                os.pwrite(fd, data, off)
        finally:
            os.close(fd)
        # A path on a disk (this file's folder), which the client must refuse without opening it.
        sent = os.path.join(os.path.dirname(os.path.abspath(__file__)), "not-shm") if self.fault == "path_outside_shm" else path
        return path, pb.RegionReady(region_id=rid, path=sent, region_bytes=size, tensors=placements)

    def _await_mapped(self, request_iterator: Iterator[pb.LoadClientMessage], rid: int) -> bool:
        """Reads client messages until `mapped` for `rid` (True) or the end of the stream (False)."""
        for msg in request_iterator:
            kind = msg.WhichOneof("msg")
            self.client_messages.append((kind, getattr(msg, kind).region_id))
            if kind == "mapped" and self.client_messages[-1][1] == rid:
                return True
        return False
