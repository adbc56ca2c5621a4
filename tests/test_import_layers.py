"""The package layout is the architecture, and imports follow it in one direction.

- The plugin machinery is a chain: the probe, the process state, the provider base class, the
  hook specifications, isolation, the plugin manager, the default hooks, the runtime, then
  ``portarun.testing``. No module imports one above it, not even inside a function (that would
  be a circular import held apart by a function-level import).
- The small utilities (``portarun._util``) import nothing of portarun but each other and the
  errors; the machine-fact readers (``portarun._machine``) add only the fact records.
- The command line (``portarun._cli``) is a leaf: only the command line itself imports it.
- Each of those modules imports alone in a fresh interpreter.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "portarun"
#: Bottom first: each may import only modules listed before it (and modules not listed).
CHAIN = ("portarun.probe", "portarun._plugins.state", "portarun.provider", "portarun.hookspecs",
         "portarun._plugins.isolation", "portarun._plugins.manager", "portarun._plugins.defaults",
         "portarun.runtime", "portarun.testing")


def _module_files() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _module_files()


def _imports(module: str) -> set[str]:
    """The portarun modules ``module`` imports anywhere (functions included), as absolute
    names, except under ``if TYPE_CHECKING:``, which never runs."""
    path = MODULES[module]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING":
            skipped.update(id(child) for stmt in node.body for child in ast.walk(stmt))
    here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == "portarun")
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = ".".join(here[:len(here) - node.level + 1] + ([node.module] if node.module else []))
            elif (node.module or "").split(".")[0] == "portarun":
                base = str(node.module)
            else:
                continue
            # `from . import report` names a module; `from .errors import warn` names a function
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                         for alias in node.names)
    return found


def _under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_the_import_reader_sees_relative_and_function_level_imports() -> None:
    """The checks below are only as good as this reader."""
    assert "portarun._plugins.state" in _imports("portarun.provider")  # inside a function
    assert "portarun._cli.report" in _imports("portarun._cli.main")  # from . import report
    assert "portarun.errors" in _imports("portarun._util.units")  # from ..errors import ...
    assert "portarun.runtime" not in _imports("portarun.provider")  # only under TYPE_CHECKING there


@pytest.mark.parametrize("module", CHAIN)
def test_no_module_imports_one_above_it(module: str) -> None:
    above = set(CHAIN[CHAIN.index(module) + 1:])
    assert not _imports(module) & above, f"{module} imports {sorted(_imports(module) & above)}"


def test_provider_does_not_reach_the_plugin_manager_or_the_runtime() -> None:
    """The cycle this layering removed: provider -> manager -> runtime -> provider."""
    assert not _imports("portarun.provider") & {"portarun._plugins.manager", "portarun.runtime"}
    assert "portarun.runtime" not in _imports("portarun._plugins.manager")


@pytest.mark.parametrize("module", [m for m in MODULES if _under(m, "portarun._util")])
def test_utilities_stand_alone(module: str) -> None:
    outside = {m for m in _imports(module) if not _under(m, "portarun._util") and m != "portarun.errors"}
    assert not outside, f"{module} imports {sorted(outside)}"


@pytest.mark.parametrize("module", [m for m in MODULES if _under(m, "portarun._machine")])
def test_machine_readers_need_only_utilities_and_fact_records(module: str) -> None:
    allowed = ("portarun._machine", "portarun._util", "portarun.errors", "portarun.facts")
    outside = {m for m in _imports(module) if not any(_under(m, a) for a in allowed)}
    assert not outside, f"{module} imports {sorted(outside)}"


def test_only_the_command_line_imports_the_command_line() -> None:
    entry_points = {"portarun.__main__", "portarun.monitor.cli"}  # `python -m portarun`, `portarun monitor`
    users = {m for m in MODULES if not _under(m, "portarun._cli") and m not in entry_points
             and any(_under(i, "portarun._cli") for i in _imports(m))}
    assert not users, f"outside the command line, {sorted(users)} import portarun._cli"


def test_private_modules_live_in_private_packages() -> None:
    """A private module is marked once, by its package: no ``_name.py`` beside public modules
    (``_version`` excepted: packaging reads it by that name)."""
    stray = [m for m in MODULES if m.rpartition(".")[2].startswith("_") and not m.endswith("__main__")
             and m != "portarun._version" and MODULES[m].name != "__init__.py"]
    assert not stray, stray


@pytest.mark.parametrize("module", CHAIN + tuple(m for m in MODULES if m.split(".")[1:2] in (
    ["_plugins"], ["_machine"], ["_cli"], ["_util"])))
def test_each_module_imports_alone(module: str) -> None:
    result = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
