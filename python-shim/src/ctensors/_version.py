"""The package version: the same as the npm package's (plugin/package.json, the one source of truth).

pyproject.toml reads it from here; the sidecar reports its own in Health, and the client compares
the two (`_compat.check_sidecar_version`). A test in test/packaging requires the two files to agree.
"""

__version__ = "0.1.0"
