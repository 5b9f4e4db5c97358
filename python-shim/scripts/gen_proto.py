"""Regenerates the committed gRPC stubs in src/ctensors/_proto/ from proto/ctensors/sidecar/v1/sidecar.proto.

The proto package is `ctensors.sidecar.v1`, so protoc's grpc module imports
`from ctensors.sidecar.v1 import sidecar_pb2`; that module does not exist in this Python package,
so the import is rewritten to the package-relative `from . import sidecar_pb2`. Nothing else is edited.
Run with the pinned grpcio-tools (python-requirements.txt): tests/test_proto.py regenerates into a
temporary folder and requires byte-identical output, so the stubs cannot drift from the proto.

Usage: python python-shim/scripts/gen_proto.py [--out-dir DIR]   (default: src/ctensors/_proto)
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

SHIM_ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = SHIM_ROOT.parent / "proto"
PROTO_FILE = "ctensors/sidecar/v1/sidecar.proto"
DEFAULT_OUT_DIR = SHIM_ROOT / "src" / "ctensors" / "_proto"
GENERATED = ("sidecar_pb2.py", "sidecar_pb2.pyi", "sidecar_pb2_grpc.py")

_ABSOLUTE_IMPORT = "from ctensors.sidecar.v1 import sidecar_pb2 as"
_RELATIVE_IMPORT = "from . import sidecar_pb2 as"


def generate(out_dir: Path) -> list[Path]:
    """Runs protoc (grpc_tools) and writes the three generated files into out_dir."""
    from grpc_tools import protoc  # dev dependency only: imported here so the module loads without it

    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto shipped with grpc_tools
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        rc = protoc.main(
            [
                "grpc_tools.protoc",
                f"-I{PROTO_ROOT}",
                f"-I{include}",
                f"--python_out={tmp}",
                f"--pyi_out={tmp}",
                f"--grpc_python_out={tmp}",
                str(PROTO_ROOT / PROTO_FILE),
            ]
        )
        if rc != 0:
            raise RuntimeError(f"protoc failed with exit code {rc}")
        src_dir = Path(tmp) / Path(PROTO_FILE).parent
        grpc_module = src_dir / "sidecar_pb2_grpc.py"
        text = grpc_module.read_text(encoding="utf-8")
        if text.count(_ABSOLUTE_IMPORT) != 1:
            raise RuntimeError(f"unexpected import layout in the generated {grpc_module.name}")
        grpc_module.write_text(text.replace(_ABSOLUTE_IMPORT, _RELATIVE_IMPORT), encoding="utf-8")
        written = []
        for name in GENERATED:
            shutil.copyfile(src_dir / name, out_dir / name)
            written.append(out_dir / name)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)
    for path in generate(args.out_dir):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
