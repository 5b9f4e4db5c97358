"""The GPU path of issue 16, as one prepared script (run it once on a machine with a CUDA GPU).

usage: python bench/gpu/run.py --plain PLAIN.safetensors --encrypted ENC.safetensors --socket SOCK
                               [--device cuda] [--reps 3] [--window-mib 256] [--json OUT]

Measures, in this process:
  h2d        host-to-device GB/s of one window-sized buffer: pageable memory, the same bytes in a
             /dev/shm mapping registered with cudaHostRegister (what the loader copies from), and a
             torch pinned buffer (pin_memory): the ceiling
  plain      time to weights on the GPU: safetensors.torch.load_file(PLAIN, device=DEVICE)
  ours       time to weights on the GPU: ctensors.load_file(ENC, socket=SOCK, device=DEVICE)
Each figure is printed as one line `GPU_RESULT {json}`. With --device cpu every step runs without
a GPU (pageable copies only): that is what the tests run (python-shim/tests/test_gpu_bench.py).
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plain", required=True, help="plain safetensors file of the model")
    p.add_argument("--encrypted", required=True, help="the same model encrypted (CryptoTensors)")
    p.add_argument("--socket", required=True, help="socket of a running `ctensors serve` holding the key")
    p.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu (cpu: the CPU-side checks only)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--window-mib", type=int, default=256, help="size of the H2D test buffer")
    p.add_argument("--json", help="also write every result to this file")
    a = p.parse_args(argv)
    if a.reps < 1 or a.window_mib < 1:
        p.error("--reps and --window-mib must be positive")
    a.device = torch.device(a.device)
    if a.device.type not in ("cpu", "cuda"):
        p.error(f"--device must be cpu or cuda[:N], got {a.device}")
    return a


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device, reps: int) -> list[float]:
    """Wall seconds of `fn` (the device synchronised after it), `reps` times."""
    out = []
    for _ in range(reps):
        _sync(device)
        t0 = time.perf_counter()
        result = fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
        del result
    return out


def shm_window(nbytes: int) -> tuple[mmap.mmap, torch.Tensor]:
    """A /dev/shm mapping of `nbytes` filled with bytes (as a sidecar region), and a uint8 view of it."""
    path = f"/dev/shm/ctensors-gpubench-{os.getpid()}"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.unlink(path)
        os.ftruncate(fd, nbytes)
        m = mmap.mmap(fd, nbytes, flags=mmap.MAP_SHARED, prot=mmap.PROT_READ | mmap.PROT_WRITE)
    finally:
        os.close(fd)
    view = torch.frombuffer(m, dtype=torch.uint8)
    view.fill_(7)
    return m, view


def h2d(device: torch.device, nbytes: int, reps: int) -> list[dict[str, Any]]:
    """H2D GB/s from pageable memory, from a registered /dev/shm window, and from a pinned buffer."""
    results = []
    pageable = torch.full((nbytes,), 7, dtype=torch.uint8)
    dst = torch.empty(nbytes, dtype=torch.uint8, device=device)
    results.append(_rate("h2d pageable", timed(lambda: dst.copy_(pageable), device, reps), nbytes))
    m, window = shm_window(nbytes)
    if device.type == "cuda":
        cudart = torch.cuda.cudart()
        rc = cudart.cudaHostRegister(window.data_ptr(), nbytes, 0)
        if int(rc) != 0:
            raise RuntimeError(f"cudaHostRegister of the window failed: {rc}")
        try:
            results.append(
                _rate("h2d registered /dev/shm window", timed(lambda: dst.copy_(window, non_blocking=True), device, reps), nbytes)
            )
        finally:
            cudart.cudaHostUnregister(window.data_ptr())
        pinned = pageable.pin_memory()
        results.append(_rate("h2d torch pinned buffer", timed(lambda: dst.copy_(pinned, non_blocking=True), device, reps), nbytes))
    else:
        results.append(_rate("h2d /dev/shm window (pageable, cpu)", timed(lambda: dst.copy_(window), device, reps), nbytes))
    del m  # unmapped with its last view (never close() a mapping that views use: _shm.py)
    return results


def to_gpu(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Time to weights on the device: plain safetensors against ours (ctensors through the sidecar)."""
    import safetensors.torch

    import ctensors

    dev = str(args.device)
    nbytes = os.path.getsize(args.plain)
    plain = timed(lambda: safetensors.torch.load_file(args.plain, device=dev), args.device, args.reps)
    ours = timed(lambda: ctensors.load_file(args.encrypted, socket=args.socket, device=dev), args.device, args.reps)
    return [
        _rate(f"weights on {dev}: safetensors load_file (plain)", plain, nbytes),
        _rate(f"weights on {dev}: ctensors.load_file", ours, nbytes),
    ]


def _rate(what: str, seconds: list[float], nbytes: int) -> dict[str, Any]:
    best = sorted(seconds)[len(seconds) // 2]
    return {"what": what, "seconds": seconds, "median_s": best, "gb_per_s": nbytes / 1e9 / best}


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        return f"{p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__}, CUDA {torch.version.cuda}"
    return f"cpu only, torch {torch.__version__}"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results = [{"what": "machine", "device": describe(args.device)}]
    results += h2d(args.device, args.window_mib * 2**20, args.reps)
    results += to_gpu(args)
    for r in results:
        sys.stdout.write(f"GPU_RESULT {json.dumps(r)}\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
