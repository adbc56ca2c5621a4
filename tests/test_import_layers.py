"""The plugin machinery imports in one direction: the probe, the process state, the provider
base class, the hook specifications, isolation, the plugin manager, then the runtime. No module
imports one above it, not even inside a function (that would be a circular import held apart
by a function-level import), and each imports alone in a fresh interpreter."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "portarun"
#: Bottom first: each may import only modules listed before it (and modules not listed).
LAYERS = ("probe", "_state", "provider", "hookspecs", "_isolation", "_manager", "_defaults", "runtime", "testing")


def _imports(module: str) -> set[str]:
    """The sibling modules ``module`` imports anywhere (functions included), except under
    ``if TYPE_CHECKING:``, which never runs."""
    path = PACKAGE / f"{module}.py"
    tree = ast.parse((path if path.exists() else PACKAGE / module / "__init__.py").read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom) or node.level != 1:
            continue
        if node.module:
            found.add(node.module.split(".")[0])
        else:  # from . import runtime
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("module", LAYERS)
def test_no_module_imports_one_above_it(module: str) -> None:
    above = set(LAYERS[LAYERS.index(module) + 1:])
    assert not _imports(module) & above, f"portarun.{module} imports {sorted(_imports(module) & above)}"


def test_provider_does_not_reach_the_plugin_manager_or_the_runtime() -> None:
    """The cycle this layering removed: provider -> _manager -> runtime -> provider."""
    assert not _imports("provider") & {"_manager", "runtime"}
    assert "runtime" not in _imports("_manager")


@pytest.mark.parametrize("module", LAYERS)
def test_each_module_imports_alone(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"import portarun.{module}"], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
