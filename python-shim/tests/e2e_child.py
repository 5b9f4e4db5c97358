"""A client process for test_e2e.py (run as a script: a separate process, like a vLLM rank).

Usage: e2e_child.py SOCKET MODE MODEL [EXPECTED_JSON]
  verify       load_file(MODEL), compare every tensor's sha256/dtype/shape with EXPECTED_JSON, print "OK"
  stream-hang  start a streaming load with a small window, print "LOADING" after the first tensor,
               then hang (the parent kills this process with SIGKILL mid-load)
  load-exit    load_file(MODEL), print "LOADED", exit normally without closing anything explicitly
  open-hang    safe_open(MODEL) (OpenModel), print "OPENED", then hang holding it open (the parent
               kills this process, or lets it live)
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import torch

import ctensors


def digest(t: torch.Tensor) -> str:
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return hashlib.sha256(raw).hexdigest()


def main() -> int:
    socket, mode, model = sys.argv[1:4]
    if mode == "verify":
        with open(sys.argv[4]) as f:
            expected = json.load(f)
        loaded = ctensors.load_file(model, socket=socket)
        got = {n: {"sha256": digest(t), "dtype": str(t.dtype), "shape": list(t.shape)} for n, t in loaded.items()}
        if got != expected:
            bad = sorted(n for n in set(got) | set(expected) if got.get(n) != expected.get(n))
            print(f"MISMATCH {bad[:5]}", flush=True)
            return 1
        print("OK", flush=True)
        return 0
    if mode == "stream-hang":
        f = ctensors.safe_open(model, socket=socket)
        stream = f.stream(window_bytes=1 << 20, window_count=1, copy=False)
        next(stream)
        print("LOADING", flush=True)
        time.sleep(600)
        return 2
    if mode == "open-hang":
        f = ctensors.safe_open(model, socket=socket)
        print(f"OPENED {len(f.keys())}", flush=True)
        time.sleep(600)
        return 2
    if mode == "load-exit":
        tensors = ctensors.load_file(model, socket=socket)
        print(f"LOADED {len(tensors)}", flush=True)
        return 0
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main())
