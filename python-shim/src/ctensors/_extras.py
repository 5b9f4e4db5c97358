"""The optional integrations and the pip extras that install them.

`import ctensors.transformers` without transformers installed says which extra to install, in one
line, instead of a bare ModuleNotFoundError from deep inside the package.
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency of a ctensors integration is not installed."""


def missing_extra(err: ModuleNotFoundError, module: str, extra: str, feature: str) -> ModuleNotFoundError:
    """What to raise for `err`: a one-line MissingExtraError when it is `module` that is missing, else `err` itself."""
    if err.name is None or err.name.split(".")[0] != module.split(".")[0]:
        return err  # something else is missing: not ours to explain
    return MissingExtraError(f"{feature} needs {module}, which is not installed: pip install 'ctensors[{extra}]'", name=module)


def require_extra(module: str, extra: str, feature: str) -> ModuleType:
    """Imports `module`; if it is not installed, raises MissingExtraError naming `pip install 'ctensors[extra]'`."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        raise missing_extra(err, module, extra, feature) from None
