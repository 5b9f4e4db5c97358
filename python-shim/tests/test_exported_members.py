"""The public surface is pinned: growing it is a decision, not an accident (httpx's test of the same name)."""

from __future__ import annotations

import subprocess
import sys

import ctensors
import ctensors.errors


def test_all_is_pinned() -> None:
    assert ctensors.__all__ == ["CryptoTensorsError", "__version__", "default_socket_path", "load_file", "safe_open"]
    assert ctensors.__all__ == sorted(ctensors.__all__)
    for name in ctensors.__all__:
        assert getattr(ctensors, name) is not None


def test_no_other_public_names() -> None:
    public = {n for n in vars(ctensors) if not n.startswith("_")}
    # Submodules appear as attributes once imported; they are not re-exports.
    submodules = {"errors", "transformers", "vllm"}
    assert public - submodules == set(ctensors.__all__) - {"__version__"}


def test_errors_module_surface() -> None:
    assert ctensors.errors.__all__ == [
        "ERROR_CODES",
        "SIDECAR_UNAVAILABLE",
        "CryptoTensorsError",
        "SidecarUnavailableError",
        "from_rpc_error",
    ]


def test_importing_ctensors_does_not_import_transformers() -> None:
    code = "import sys, ctensors\nassert 'transformers' not in sys.modules\nctensors.transformers\nassert 'transformers' in sys.modules\n"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_lazy_submodule_is_the_module() -> None:
    import ctensors.transformers as module

    assert ctensors.transformers is module
    assert module.__all__ == ["from_pretrained"]
    assert "transformers" in dir(ctensors)


def test_unknown_attribute() -> None:
    try:
        ctensors.nope  # noqa: B018
    except AttributeError as err:
        assert "nope" in str(err)
    else:
        raise AssertionError("expected AttributeError")
