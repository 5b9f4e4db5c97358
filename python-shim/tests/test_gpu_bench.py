"""bench/gpu/run.py (the GPU path's prepared benchmark) without a GPU: its argument checks, and every
step with --device cpu against the real sidecar (pageable copies; the GPU figures need a GPU)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch
from conftest import REPO_ROOT, Keys, Sidecar, encrypt
from safetensors.torch import save_file

_spec = importlib.util.spec_from_file_location("gpu_bench", REPO_ROOT / "bench" / "gpu" / "run.py")
assert _spec and _spec.loader
gpu_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(gpu_bench)

BASE = ["--plain", "p.safetensors", "--encrypted", "e.safetensors", "--socket", "s.sock"]


def test_arguments_default_to_cuda_and_are_checked(capsys: pytest.CaptureFixture[str]) -> None:
    a = gpu_bench.parse_args(BASE)
    assert (a.device, a.reps, a.window_mib) == (torch.device("cuda"), 3, 256)
    assert gpu_bench.parse_args([*BASE, "--device", "cuda:1"]).device == torch.device("cuda", 1)
    for bad in (["--device", "meta"], ["--reps", "0"], ["--window-mib", "-1"]):
        with pytest.raises(SystemExit):
            gpu_bench.parse_args([*BASE, *bad])
    with pytest.raises(SystemExit):
        gpu_bench.parse_args(["--plain", "p"])  # --encrypted and --socket are required
    assert "--device" in capsys.readouterr().err


def test_cpu_run_measures_pageable_copies_and_both_loads(
    tmp_path: Path, keys: Keys, sidecar: Sidecar, capsys: pytest.CaptureFixture[str]
) -> None:
    g = torch.Generator().manual_seed(1)
    tensors = {f"layers.{i}.weight": torch.randn(256, 512, generator=g).to(torch.bfloat16) for i in range(4)}
    plain = tmp_path / "plain.safetensors"
    save_file(tensors, str(plain))
    enc = encrypt(plain, tmp_path / "enc.safetensors", keys)
    out = tmp_path / "gpu.json"
    argv = [
        "--plain",
        str(plain),
        "--encrypted",
        str(enc),
        "--socket",
        sidecar.socket,
        "--device",
        "cpu",
        "--reps",
        "1",
        "--window-mib",
        "1",
        "--json",
        str(out),
    ]
    assert gpu_bench.main(argv) == 0
    lines = [json.loads(line.split(" ", 1)[1]) for line in capsys.readouterr().out.splitlines() if line.startswith("GPU_RESULT ")]
    assert [r["what"] for r in lines] == [
        "machine",
        "h2d pageable",
        "h2d /dev/shm window (pageable, cpu)",
        "weights on cpu: safetensors load_file (plain)",
        "weights on cpu: ctensors.load_file",
    ]
    assert lines[0]["device"].startswith("cpu only")
    assert all(r["gb_per_s"] > 0 and len(r["seconds"]) == 1 for r in lines[1:])
    assert json.loads(out.read_text()) == lines
    assert not [p for p in Path("/dev/shm").iterdir() if p.name.startswith("ctensors-gpubench-")]
    assert sys.modules.get("ctensors") is not None
