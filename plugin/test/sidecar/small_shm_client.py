"""A client process for small-shm.test.ts: the real Python shim, run inside a mount namespace whose
/dev/shm is a small tmpfs. Prints one JSON line: {"ok": true, "tensors": N} when every tensor matched
EXPECTED_JSON (sha256, dtype, shape), else {"ok": false, "code": ..., "message": ...}.

Usage: small_shm_client.py SOCKET MODE MODEL EXPECTED_JSON
  vllm       the vLLM loader's weight source (ctensors.vllm CheckpointWeights) with the default
             model_loader_extra_config: streaming, the sidecar's window
  vllm-keep  the same, for a model whose load_weights keeps every weight (`param.data = t`): the
             default copy="auto" retains regions, so the model needs the shared memory of all of them
  resident   ctensors.load_file (RESIDENT: every tensor in shared memory at once)
  stream     ctensors.safe_open(...).stream() with the sidecar's default window
"""

from __future__ import annotations

import hashlib
import json
import sys

import torch

import ctensors
from ctensors.errors import CryptoTensorsError
from ctensors.vllm._config import LoaderConfig
from ctensors.vllm._weights import CheckpointWeights


def digest(t: torch.Tensor) -> dict[str, object]:
    raw = t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return {"sha256": hashlib.sha256(raw).hexdigest(), "dtype": str(t.dtype), "shape": list(t.shape)}


def load(socket: str, mode: str, model: str) -> dict[str, dict[str, object]]:
    if mode == "vllm":
        config = LoaderConfig.parse({"socket": socket})
        with CheckpointWeights(model, config) as weights:
            return {name: digest(t) for name, t in weights.weights()}
    if mode == "vllm-keep":
        with CheckpointWeights(model, LoaderConfig.parse({"socket": socket})) as weights:
            kept = dict(weights.weights())
        return {name: digest(t) for name, t in kept.items()}
    if mode == "resident":
        return {name: digest(t) for name, t in ctensors.load_file(model, socket=socket).items()}
    if mode == "stream":
        with ctensors.safe_open(model, socket=socket) as f:
            return {name: digest(t) for name, t in f.stream()}
    raise SystemExit(f"unknown mode {mode}")


def main() -> int:
    socket, mode, model, expected_path = sys.argv[1:5]
    with open(expected_path) as f:
        expected = json.load(f)
    try:
        got = load(socket, mode, model)
    except CryptoTensorsError as err:
        print(json.dumps({"ok": False, "code": err.code, "message": err.message}), flush=True)
        return 0
    bad = sorted(n for n in set(got) | set(expected) if got.get(n) != expected.get(n))
    print(json.dumps({"ok": not bad, "tensors": len(got), "mismatch": bad[:5]}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
