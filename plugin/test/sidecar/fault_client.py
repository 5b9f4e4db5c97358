"""A client process for fault-injection.test.ts: the real Python shim (ctensors), in a process of its
own so that the test can kill it (SIGKILL) at a chosen step.

Usage: fault_client.py SOCKET MODE MODEL [EXPECTED_JSON]
  open-hang    safe_open(MODEL) (OpenModel), print "OPENED", then hang
  stream-hang  start a streaming load (1 MiB window, one region), print "LOADING" after the first
               tensor, then hang holding that region mapped
  hold         load_file(MODEL) (RESIDENT: every region mapped and unlinked), print "LOADED", hang
               holding the tensors
  verify       load_file(MODEL), compare every tensor's sha256/dtype/shape with EXPECTED_JSON, print
               "OK" (exit 0) or "MISMATCH ..." (exit 1)
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
    if mode == "open-hang":
        f = ctensors.safe_open(model, socket=socket)
        print(f"OPENED {len(f.keys())}", flush=True)
        time.sleep(600)
        return 2
    if mode == "stream-hang":
        f = ctensors.safe_open(model, socket=socket)
        stream = f.stream(window_bytes=1 << 20, window_count=1, copy=False)
        next(stream)
        print("LOADING", flush=True)
        time.sleep(600)
        return 2
    if mode == "hold":
        tensors = ctensors.load_file(model, socket=socket)
        print(f"LOADED {len(tensors)}", flush=True)
        time.sleep(600)
        return 2
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
    raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    sys.exit(main())
