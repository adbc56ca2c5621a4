"""Broken on purpose: imports a dependency that is not installed, as a plugin with a missing
requirement would. Loading this plugin fails with ModuleNotFoundError."""
from __future__ import annotations

import portarun_example_broken_missing_dependency  # type: ignore[import-not-found]  # noqa: F401
