"""Finding the ``portarun`` entry points: the light scan agrees with importlib.metadata, sees a
distribution installed a moment ago, and never writes anything (nothing goes stale, nothing is
left in the installed package to shadow a later install)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import portarun._plugins.entrypoints as ep

REPO = Path(__file__).resolve().parents[1]


def _metadata_answer() -> list[ep.EntryPoint]:
    return sorted(ep.portarun_entry_points({"PORTARUN_ENTRY_POINT_SCAN": "full"}))


def test_the_light_scan_agrees_with_importlib_metadata() -> None:
    found = sorted(ep.portarun_entry_points({}))
    assert {e.name for e in found} >= {"local", "colab", "kaggle", "paperspace"}
    assert found == _metadata_answer()


def _dist(site: Path, folder: str, metadata: str, entry_points: str | None) -> None:
    dist = site / folder
    dist.mkdir(parents=True)
    (dist / ("METADATA" if folder.endswith(".dist-info") else "PKG-INFO")).write_text(metadata)
    if entry_points is not None:
        (dist / "entry_points.txt").write_text(entry_points)


def test_what_the_scan_reads(tmp_path, monkeypatch) -> None:
    """dist-info and egg-info folders, comments and other groups, names with dashes, and the
    first of two copies on sys.path winning: all as importlib.metadata reads them."""
    first, second = tmp_path / "first", tmp_path / "second"
    _dist(first, "acme_host-1.2.dist-info", "Metadata-Version: 2.1\nName: acme-host\nVersion: 1.2\n\nbody: x\n",
          "# comment\n[console_scripts]\nacme = acme:main\n\n[portarun]\n# comment\nacme = acme_host.plugin\n"
          "acme-two = acme_host.two:hooks\n")
    _dist(first, "legacy.egg-info", "Metadata-Version: 1.2\nName: legacy\nVersion: 0.3\n",
          "[portarun]\nlegacy=legacy_plugin\n")
    _dist(first, "no_plugins-1.0.dist-info", "Name: no-plugins\nVersion: 1.0\n", "[other]\nx = y\n")
    _dist(first, "no_entry_points-1.0.dist-info", "Name: no-entry-points\nVersion: 1.0\n", None)
    _dist(second, "acme_host-0.9.dist-info", "Name: acme-host\nVersion: 0.9\n", "[portarun]\nold = acme_host.old\n")
    monkeypatch.setattr(sys, "path", [sys.path[0], str(first), str(second), *sys.path[1:]])
    found = {e.name: e for e in ep.portarun_entry_points({})}
    assert found["acme"] == ep.EntryPoint("acme", "acme_host.plugin", "acme-host", "1.2")
    assert found["acme-two"].value == "acme_host.two:hooks"
    assert found["legacy"] == ep.EntryPoint("legacy", "legacy_plugin", "legacy", "0.3")
    assert "old" not in found  # the shadowed copy, as importlib.metadata ignores it
    assert sorted(found.values()) == _metadata_answer()


def test_a_distribution_installed_a_moment_ago_is_seen(tmp_path, monkeypatch) -> None:
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(sys, "path", [sys.path[0], str(site), *sys.path[1:]])
    assert not any(e.name == "newhost" for e in ep.portarun_entry_points({}))
    _dist(site, "newhost-1.0.dist-info", "Name: newhost\nVersion: 1.0\n", "[portarun]\nnewhost = newhost_plugin\n")
    assert ep.EntryPoint("newhost", "newhost_plugin", "newhost", "1.0") in ep.portarun_entry_points({})


def test_unreadable_metadata_is_skipped(tmp_path, monkeypatch) -> None:
    site = tmp_path / "site"
    _dist(site, "broken-1.0.dist-info", "Name: broken\nVersion: 1.0\n", "")
    (site / "broken-1.0.dist-info" / "entry_points.txt").write_bytes(b"[portarun]\nx = \xff\xfe\n")
    monkeypatch.setattr(sys, "path", [sys.path[0], str(site), str(tmp_path / "missing"), *sys.path[1:]])
    assert {e.name for e in ep.portarun_entry_points({})} >= {"local", "kaggle"}


def _tree(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_mtime_ns for p in folder.rglob("*")}


def test_detect_writes_nothing(tmp_path) -> None:
    """Neither into the installed package (the old entry-point cache did, and the folder it left
    behind after an uninstall shadowed the next install) nor into the user's cache folder.
    A new sys.path entry makes any cache keyed by sys.path stale, so one would be written."""
    package = REPO / "portarun"
    home = tmp_path / "home"
    home.mkdir()
    before = _tree(package)
    env = {**os.environ, "HOME": str(home), "XDG_CACHE_HOME": str(home / ".cache"), "PYTHONDONTWRITEBYTECODE": "1",
           "PYTHONPATH": os.pathsep.join([str(tmp_path / "new-site"), str(REPO)])}
    (tmp_path / "new-site").mkdir()
    subprocess.run([sys.executable, "-c", "import portarun; portarun.detect(); portarun.providers()"],
                   cwd=tmp_path, env=env, check=True, capture_output=True, timeout=120)
    assert _tree(package) == before
    assert list(home.rglob("*")) == []


@pytest.mark.slow
def test_uninstall_then_editable_install_stays_importable(tmp_path) -> None:
    """The new user's path: install, detect, uninstall, ``pip install -e .``, import from
    another folder. Runs pip offline against a fresh virtual environment that borrows only the
    build tools and portarun's requirements from this one."""
    source = tmp_path / "src"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tox", "build", "dist", "*.egg-info", "__pycache__", "tests", "plugins", "benchmarks",
        "docs", "examples", ".mypy_cache", ".pytest_cache", "bench-*"))  # bench-*: benchmarks' passing scratch
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                               check=True, capture_output=True, text=True).stdout.strip())
    borrowed = tmp_path / "borrowed"
    borrowed.mkdir()
    here = Path(sysconfig.get_path("purelib"))
    for name in os.listdir(here):
        if name.split("-")[0].lower() in ("setuptools", "_distutils_hack", "pluggy", "platformdirs", "fsspec"):
            (borrowed / name).symlink_to(here / name)
    (site / "borrowed.pth").write_text(str(borrowed) + "\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "PORTARUN_", "PIP_"))}

    def pip(*args: str) -> None:
        result = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "--disable-pip-version-check",
                                 "--no-input", "--no-cache-dir", *args], cwd=elsewhere, env=env, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    def run(code: str) -> str:
        result = subprocess.run([str(python), "-c", code], cwd=elsewhere, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip()

    pip("install", "--no-deps", "--no-build-isolation", "--no-index", str(source))
    assert run("import portarun; print(portarun.detect().host.name)")
    pip("uninstall", "--yes", "portarun")
    assert not (site / "portarun").exists()  # nothing left behind to shadow the next install
    pip("install", "--no-deps", "--no-build-isolation", "--no-index", "--editable", str(source))
    assert (run("import portarun; portarun.detect(); print(portarun.__file__)")
            == str(source / "portarun" / "__init__.py"))


def test_special_files_planted_as_metadata_neither_hang_nor_fill_memory(tmp_path, monkeypatch) -> None:
    site = tmp_path / "site"
    _dist(site, "fifo-1.0.dist-info", "Name: fifo\nVersion: 1.0\n", None)
    os.mkfifo(site / "fifo-1.0.dist-info" / "entry_points.txt")  # open() would wait for a writer
    _dist(site, "zero-1.0.dist-info", "Name: zero\nVersion: 1.0\n", None)
    (site / "zero-1.0.dist-info" / "entry_points.txt").symlink_to("/dev/zero")  # read() would never end
    _dist(site, "metafifo-1.0.dist-info", "", "[portarun]\nmetafifo = metafifo_plugin\n")
    (site / "metafifo-1.0.dist-info" / "METADATA").unlink()
    os.mkfifo(site / "metafifo-1.0.dist-info" / "METADATA")
    monkeypatch.setattr(sys, "path", [sys.path[0], str(site), *sys.path[1:]])
    found = {e.name: e for e in ep.portarun_entry_points({})}
    assert found["metafifo"] == ep.EntryPoint("metafifo", "metafifo_plugin", None, None)
    assert "local" in found


def test_setup_cfg_declares_exactly_the_builtin_plugins() -> None:
    """The built-in hosts are named twice: as entry points (what an install advertises) and in
    ``BUILTIN_PLUGINS`` (what loads when entry points are not scanned). They must agree."""
    import configparser

    from portarun._plugins.manager import BUILTIN_PLUGINS

    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg", encoding="utf-8")
    declared = dict(line.replace(" ", "").split("=", 1)
                    for line in config["options.entry_points"]["portarun"].strip().splitlines())
    assert declared == dict(BUILTIN_PLUGINS)
    for name, module in declared.items():  # and each names a module that exists
        assert (REPO / (module.replace(".", "/") + ".py")).is_file(), name
