"""Child: loading a model into this process's memory, plain (safetensors) or through the sidecar.

usage: python bench/ops/sidecar_load.py MODE PATH [SOCKET [WINDOW_BYTES WINDOW_COUNT]] [--verify PLAIN]

MODE
  plain-clone  baseline: safetensors.torch.load_file(PATH) + .clone() of every tensor
  resident     ctensors.load_file(PATH, socket=SOCKET) (zero-copy views of /dev/shm regions),
               one byte of every 4 KiB page of every view read, + .clone() of every tensor;
               `loadSeconds` is load_file alone (views untouched), `touchSeconds` the page touch
               (`loadCpuSeconds`, `touchCpuSeconds`: this process's CPU time in each)
  stream       ctensors.safe_open(PATH, framework="pt", socket=SOCKET) + f.stream(copy=True,
               window_bytes=, window_count=) (0 = the sidecar's default), every tensor kept
  stream-drop  the same, but each copied tensor is dropped at once (for the sidecar-memory runs)

Timed: the operation only (imports outside). Every tensor ends up owned by this process and is kept
until the end (peak RSS ≈ the model). `openSeconds` is the time to the first tensor (OpenModel, the
signature check and DEK unwrap included, for the sidecar modes). With --verify PLAIN, after the
result line, every kept tensor is compared with safetensors' load of PLAIN (untimed) and one line
`BENCH_VERIFY ok|mismatch` is printed.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from _common import begin, finish

import torch
import safetensors.torch

argv = sys.argv[1:]
verify = None
if "--verify" in argv:
    i = argv.index("--verify")
    verify = argv[i + 1]
    del argv[i : i + 2]
mode, path = argv[0], argv[1]
socket = argv[2] if len(argv) > 2 else None
window_bytes = int(argv[3]) if len(argv) > 3 else 0
window_count = int(argv[4]) if len(argv) > 4 else 0
if mode != "plain-clone":
    import ctensors


def cpu_seconds():
    t = os.times()
    return t.user + t.system


kept = {}
fields = {}
probe = begin()
if mode == "plain-clone":
    views = safetensors.torch.load_file(path)
    fields["loadSeconds"] = time.perf_counter() - probe["t0"]
    for name, t in views.items():
        kept[name] = t.clone()
    del views
elif mode == "resident":
    views = ctensors.load_file(path, socket=socket)
    fields["loadSeconds"] = time.perf_counter() - probe["t0"]
    fields["loadCpuSeconds"] = cpu_seconds() - probe["cpu0"]
    # every page of every view touched once (read one byte per 4 KiB): the client's share of a load
    # whose tensors are all used, without a copy
    t_touch, c_touch = time.perf_counter(), cpu_seconds()
    for t in views.values():
        if t.numel():
            int(t.reshape(-1).view(torch.uint8)[::4096].sum())
    fields["touchSeconds"] = time.perf_counter() - t_touch
    fields["touchCpuSeconds"] = cpu_seconds() - c_touch
    for name, t in views.items():
        kept[name] = t.clone()
    del views, t
elif mode == "stream":
    with ctensors.safe_open(path, framework="pt", socket=socket) as f:
        for name, t in f.stream(copy=True, window_bytes=window_bytes or None, window_count=window_count or None):
            if not kept:
                fields["openSeconds"] = time.perf_counter() - probe["t0"]
            kept[name] = t
elif mode == "stream-drop":
    # as "stream", but each copied tensor is dropped at once (client memory stays small: for runs
    # about the sidecar's memory at sizes the client could not hold)
    nbytes_seen, count = 0, 0
    with ctensors.safe_open(path, framework="pt", socket=socket) as f:
        for _name, t in f.stream(copy=True, window_bytes=window_bytes or None, window_count=window_count or None):
            if not count:
                fields["openSeconds"] = time.perf_counter() - probe["t0"]
            nbytes_seen += t.nbytes
            count += 1
            del t
    finish(probe, bytes=nbytes_seen, tensors=count, **fields)
    sys.exit(0)
else:
    raise SystemExit(f"unknown mode {mode!r}")
nbytes = sum(t.nbytes for t in kept.values())
finish(probe, bytes=nbytes, tensors=len(kept), **fields)

if verify:
    ref = safetensors.torch.load_file(verify)

    # bytes, not values: the synthetic data is random bits, so it holds NaNs (never equal to themselves)
    def same(a: torch.Tensor, b: torch.Tensor) -> bool:
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.reshape(-1).view(torch.uint8), b.reshape(-1).view(torch.uint8))

    ok = ref.keys() == kept.keys() and all(same(ref[k], kept[k]) for k in ref)
    sys.stdout.write(f"BENCH_VERIFY {'ok' if ok else 'mismatch'}\n")
    sys.stdout.flush()
