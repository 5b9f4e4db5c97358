"""The committed stubs are exactly what scripts/gen_proto.py makes from the proto: they cannot drift."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

SHIM = Path(__file__).resolve().parents[1]


def _gen_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("gen_proto", SHIM / "scripts" / "gen_proto.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_regenerated_stubs_are_identical(tmp_path: Path) -> None:
    gen = _gen_module()
    written = gen.generate(tmp_path)
    assert sorted(p.name for p in written) == sorted(gen.GENERATED)
    for name in gen.GENERATED:
        fresh = (tmp_path / name).read_bytes()
        committed = (gen.DEFAULT_OUT_DIR / name).read_bytes()
        assert fresh == committed, f"{name} is stale: run python python-shim/scripts/gen_proto.py"


def test_grpc_module_imports_package_relative() -> None:
    text = (SHIM / "src" / "ctensors" / "_proto" / "sidecar_pb2_grpc.py").read_text()
    assert "from . import sidecar_pb2 as" in text
    assert "from ctensors.sidecar" not in text


@pytest.mark.parametrize(
    "message",
    ["LoadStart", "LoadClientMessage", "LoadServerMessage", "RegionReady", "TensorPlacement", "OpenModelResponse"],
)
def test_messages_the_client_relies_on_exist(message: str) -> None:
    from ctensors._proto import sidecar_pb2

    assert hasattr(sidecar_pb2, message)
