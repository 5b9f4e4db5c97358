"""Drives one Load stream (proto `Sidecar.Load`): maps regions, acknowledges them, builds tensors.

Client side of the protocol: send `start`; for each RegionReady, map the region when it carries a
path (first time only), send `mapped` (the sidecar then unlinks the file), build the tensors; in
streaming mode send `consumed` once the region's tensors are no longer needed, so the sidecar can
refill it (a later RegionReady for the same region_id has an empty path and reuses the mapping).
The stream ends with `done`, whose counts are checked.

Two consumers:
- `load_resident`: RESIDENT mode; returns zero-copy views that keep their mapping alive.
- `stream`: STREAMING mode; yields (name, tensor) with a bounded window of regions. With copy=True
  (default) each tensor is a clone made before `consumed` is sent, so it stays valid forever; with
  copy=False each tensor is a view that is valid only until the next item is requested; with
  copy="auto" each tensor is a view that stays valid as long as it is referenced (_KeptViews: a
  region is consumed once none of its views is alive, and `retained`, i.e. handed over to this
  process, when the window is full and a view is still alive).
"""

from __future__ import annotations

import mmap
import queue
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Literal

import grpc
import torch
from torch.multiprocessing.reductions import StorageWeakRef

from ._client import SidecarClient
from ._proto import sidecar_pb2 as pb
from ._shm import _protocol, map_region, tensor_view
from .errors import from_rpc_error

_CLOSE = object()


class _Requests:
    """The client half of the stream: grpc's sender thread blocks on this queue until close()."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()

    def send(self, msg: pb.LoadClientMessage) -> None:
        self._queue.put(msg)

    def close(self) -> None:
        self._queue.put(_CLOSE)

    def __iter__(self) -> Iterator[pb.LoadClientMessage]:
        while (msg := self._queue.get()) is not _CLOSE:
            yield msg  # type: ignore[misc]


class _LoadStream:
    """One Load call. Iterate `batches()` once; call `consumed()` (streaming) and always `close()`."""

    def __init__(self, client: SidecarClient, start: pb.LoadStart) -> None:
        self._socket = client.socket_path
        self._requested = set(start.names)
        self._requests = _Requests()
        self._requests.send(pb.LoadClientMessage(start=start))
        self._call = client.load(iter(self._requests))
        self._regions: dict[int, mmap.mmap | None] = {}
        self._retained: set[int] = set()
        self._finished = False
        self._closed = False
        #: From the latest RegionReady: the sidecar accepts `retained`, and its window's region count.
        self.accepts_retained = False
        self.window_count = 0

    def batches(self) -> Iterator[tuple[int, list[tuple[str, torch.Tensor]]]]:
        """Yields (region_id, [(name, zero-copy view)]) per RegionReady, then checks `done`."""
        seen: set[str] = set()
        total_bytes = 0
        done: pb.LoadDone | None = None
        try:
            for msg in self._call:
                kind = msg.WhichOneof("msg")
                if kind == "ready":
                    batch = self._place(msg.ready)
                    for placement in msg.ready.tensors:
                        if placement.name in seen:
                            raise _protocol(f"tensor {placement.name!r} sent twice")
                        seen.add(placement.name)
                        total_bytes += placement.byte_size
                    yield msg.ready.region_id, batch
                elif kind == "done":
                    done = msg.done
                    break
                else:
                    raise _protocol("empty LoadServerMessage")
            if done is None:
                raise _protocol("the Load stream ended without `done`")
            self._requests.close()
            for _ in self._call:  # drain: surfaces the final status
                raise _protocol("a message after `done`")
            self._finished = True
        except grpc.RpcError as err:
            raise from_rpc_error(err, socket=self._socket) from err
        finally:
            self.close()
        if done.tensors != len(seen) or done.bytes != total_bytes:
            raise _protocol(f"`done` counts {done.tensors} tensors / {done.bytes} bytes, received {len(seen)} / {total_bytes}")
        missing = self._requested - seen
        if missing:
            raise _protocol(f"requested tensors not sent: {sorted(missing)[:5]}")

    def consumed(self, region_id: int) -> None:
        if not self._closed:
            self._requests.send(pb.LoadClientMessage(consumed=pb.RegionConsumed(region_id=region_id)))

    def retained(self, region_id: int) -> None:
        """Keeps the region: the sidecar never writes it again, and its mapping lives as long as its views."""
        self._retained.add(region_id)
        self._regions.pop(region_id, None)  # the views hold the mmap; it is unmapped when the last one goes
        if not self._closed:
            self._requests.send(pb.LoadClientMessage(retained=pb.RegionRetained(region_id=region_id)))

    def close(self) -> None:
        """Ends the call (cancelling it if unfinished). Idempotent. Mappings live on in their views."""
        if self._closed:
            return
        self._closed = True
        self._requests.close()  # releases grpc's sender thread
        if not self._finished:
            self._call.cancel()
        self._regions.clear()  # never mmap.close(): views may still use the pages (see _shm)

    def _place(self, ready: pb.RegionReady) -> list[tuple[str, torch.Tensor]]:
        rid = ready.region_id
        self.accepts_retained = ready.accepts_retained
        self.window_count = ready.window_count
        if rid in self._retained:
            raise _protocol(f"region {rid} was retained and announced again")
        if ready.path:
            if rid in self._regions:
                raise _protocol(f"region {rid} announced twice with a path")
            region = map_region(ready.path, ready.region_bytes) if ready.region_bytes else None
            self._regions[rid] = region
            self._requests.send(pb.LoadClientMessage(mapped=pb.RegionMapped(region_id=rid)))
        elif rid in self._regions:
            region = self._regions[rid]
        else:
            raise _protocol(f"region {rid} has no path and was never mapped")
        return [(p.name, tensor_view(region, offset=p.offset, byte_size=p.byte_size, dtype=p.dtype, shape=p.shape)) for p in ready.tensors]


def load_resident(client: SidecarClient, model_id: str, names: Sequence[str] = ()) -> dict[str, torch.Tensor]:
    """Loads tensors in RESIDENT mode (all of them when `names` is empty, in file order).

    No copy: every tensor is a view of a shared-memory mapping that lives as long as its views
    (0-element tensors excepted, see _shm.tensor_view).
    """
    stream = _LoadStream(client, pb.LoadStart(model_id=model_id, names=list(names), mode=pb.LOAD_MODE_RESIDENT))
    tensors: dict[str, torch.Tensor] = {}
    for _rid, batch in stream.batches():
        tensors.update(batch)
    return tensors


#: What `stream` does with each tensor: True (clone), False (view valid until the next item) or "auto".
Copy = bool | Literal["auto"]


def stream(
    client: SidecarClient,
    model_id: str,
    names: Iterable[str] = (),
    *,
    copy: Copy = True,
    window_bytes: int = 0,
    window_count: int = 0,
) -> Generator[tuple[str, torch.Tensor], None, None]:
    """Loads tensors in STREAMING mode through a bounded window of reused regions.

    copy=True: the tensors of a region are cloned, then `consumed` is sent, then they are yielded;
    each yielded tensor is independent of shared memory (one copy per tensor, a window's worth of
    clones at most is held here). copy=False: yields zero-copy views, and `consumed` is sent when the
    next item is requested, so a view is valid only until then (the sidecar overwrites the region).
    copy="auto": yields zero-copy views that stay valid as long as they are referenced (see _KeptViews;
    a consumer that keeps tensors costs shared memory, like a resident load, never wrong bytes); with a
    sidecar that does not accept `retained` (older than this mode) it behaves as copy=True.
    0 for window_bytes / window_count means the sidecar's default. Close the generator (or exhaust
    it) to end the call.
    """
    start = pb.LoadStart(
        model_id=model_id,
        names=list(names),
        mode=pb.LOAD_MODE_STREAMING,
        window_bytes=window_bytes,
        window_count=window_count,
    )
    load = _LoadStream(client, start)
    kept = _KeptViews(load)
    try:
        for rid, batch in load.batches():
            if copy == "auto" and load.accepts_retained:
                kept.add(rid, batch)
                if load.window_count == 1 and batch:
                    # A one-region window: the batch's last item is still alive when the next batch is
                    # needed (the one-item lag), which would retain every region; a clone of that one
                    # tensor lets a consumer that drops its tensors have the region refilled.
                    name, view = batch[-1]
                    batch[-1] = (name, view.clone())
                    del view
                batch.reverse()
                while batch:
                    item = batch.pop()  # the batch must not hold the views it has yielded
                    yield item
                    del item
                    kept.release_dead()
                kept.make_room()
            elif copy:
                clones = [(name, view.clone()) for name, view in batch]
                del batch  # drop the views before the region is released
                load.consumed(rid)
                clones.reverse()
                while clones:
                    yield clones.pop()
            else:
                yield from batch
                del batch
                load.consumed(rid)
    finally:
        load.close()


class _KeptViews:
    """copy="auto": which streaming regions the consumer may still use, through weak references to the
    storage of every view yielded from them (each view has its own storage, made by torch.frombuffer,
    which every slice, reshape or `param.data = view` of it shares; the storage keeps the mapping).

    A region is `consumed` as soon as all its views are dead (checked each time an item is requested).
    The last item yielded is normally still alive then (the consumer's loop variable, and the frame
    variables of any generator in between), so the newest region cannot be expected free (with a
    one-region window, `stream` clones each batch's last tensor for that reason); when the
    consumer holds as many unconsumed regions as the sidecar's window has (it would send nothing more
    until one is given back), the oldest is `retained` instead: the sidecar leaves it alone for good,
    and this process unmaps it when its last view goes. Never a deadlock, never a reused region read.
    """

    def __init__(self, load: _LoadStream) -> None:
        self._load = load
        self._regions: dict[int, deque[StorageWeakRef]] = {}  # in the order they were filled

    def add(self, rid: int, batch: list[tuple[str, torch.Tensor]]) -> None:
        # 0-element tensors are fresh tensors, not views (_shm.tensor_view): nothing to watch.
        self._regions[rid] = deque(StorageWeakRef(view.untyped_storage()) for _, view in batch if view.numel())  # type: ignore[no-untyped-call]

    def release_dead(self) -> None:
        """Consumes every region none of whose views is alive (views mostly die in order: stop at the first live one)."""
        for rid in [rid for rid, refs in self._regions.items() if self._dead(refs)]:
            del self._regions[rid]
            self._load.consumed(rid)

    def make_room(self) -> None:
        """Before waiting for the next region: retains the oldest regions while the window is all here."""
        self.release_dead()
        while self._regions and len(self._regions) >= max(self._load.window_count, 1):
            rid = next(iter(self._regions))
            del self._regions[rid]
            self._load.retained(rid)

    @staticmethod
    def _dead(refs: deque[StorageWeakRef]) -> bool:
        while refs and refs[0].expired():  # type: ignore[no-untyped-call]
            refs.popleft()
        return not refs
