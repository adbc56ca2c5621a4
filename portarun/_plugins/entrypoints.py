"""The ``portarun`` entry points, found by a scan light enough for every ``detect()``: no
cache, so nothing is ever written and nothing can go stale.

``importlib.metadata.entry_points()`` reads every distribution's metadata and imports the email
parser on the way: with ~130 distributions installed it costs about twice what starting the
interpreter does (benchmarks/bench_detect.py). The answer is in a few files, so
:func:`portarun_entry_points` reads only those: it lists each ``sys.path`` folder (as
importlib.metadata's own path finder does), opens the ``entry_points.txt`` of each
``*.dist-info`` / ``*.egg-info`` folder, and reads the name and version of only the
distributions that declare a ``[portarun]`` section (about 1 ms with ~130 distributions).

Like importlib.metadata, the first distribution of a name on ``sys.path`` wins (a shadowed,
older copy further down is ignored). Distributions inside zip files or served by custom
``find_distributions`` finders are not seen; ``PORTARUN_ENTRY_POINT_SCAN=full`` uses
``importlib.metadata`` instead, which sees those too.
"""
from __future__ import annotations

import os
import re
import stat
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import NamedTuple

from .._util.files import read_small
from .isolation import clean_text

GROUP = "portarun"
_SUFFIXES = (".dist-info", ".egg-info")
#: Bytes read of a metadata file at most: a FIFO, a device or a huge file planted where one is
#: expected is skipped or cut short instead of hanging or filling memory.
_LIMIT = 1 << 20
#: Characters of a distribution's name or version shown: the headers are anyone's text, so
#: terminal escapes in them are shown escaped and a long one is cut.
_SHOWN = 100


class EntryPoint(NamedTuple):
    """One entry point of the ``portarun`` group and the distribution that declares it."""

    name: str
    value: str
    distribution: str | None
    version: str | None


def portarun_entry_points(env: Mapping[str, str]) -> list[EntryPoint]:
    """Entry points of the ``portarun`` group of every distribution on ``sys.path``."""
    if env.get("PORTARUN_ENTRY_POINT_SCAN", "").strip().lower() == "full":
        return _metadata_scan()
    found: list[EntryPoint] = []
    seen: set[str] = set()
    for folder, dist_dir in _distributions():
        # importlib.metadata names a distribution after its folder for this purpose too
        # (``name-version.dist-info``; cpython@v3.11.7:Lib/importlib/metadata/__init__.py
        # PathDistribution._name_from_stem, and _unique for the first-wins rule).
        key = _normalize(dist_dir.rsplit(".", 1)[0].partition("-")[0])
        if key in seen:
            continue
        seen.add(key)
        data = read_small(os.path.join(folder, dist_dir, "entry_points.txt"), _LIMIT)
        try:
            text = data.decode("utf-8") if data is not None else ""
        except UnicodeDecodeError:
            continue
        entries = list(_section(text, GROUP))
        if entries:
            name, version = _name_and_version(folder, dist_dir)
            found += [EntryPoint(ep_name, value, name, version) for ep_name, value in entries]
    return found


def _distributions() -> Iterator[tuple[str, str]]:
    """``(sys.path folder, metadata folder name)`` in ``sys.path`` order, each folder's sorted."""
    entries: list[object] = list(sys.path)  # typed list[str], but anything can be put there
    for entry in entries:
        # The import system skips entries that are not text (cpython@v3.11.7:Lib/importlib/_bootstrap_external.py
        # PathFinder._get_spec); bytes would list bytes names, and a number an open descriptor.
        folder = (os.fspath(entry) or ".") if isinstance(entry, (str, os.PathLike)) else None
        if not isinstance(folder, str):
            continue
        try:
            names = sorted(os.listdir(folder))
        except (OSError, ValueError):  # a zip file, a missing folder, a NUL byte
            continue
        for name in names:
            if name.endswith(_SUFFIXES):
                yield folder, name


def _name_and_version(folder: str, dist_dir: str) -> tuple[str | None, str | None]:
    """``Name`` and ``Version`` from the distribution's core metadata headers (``METADATA`` in a
    dist-info folder, ``PKG-INFO`` in an egg-info one; the Core metadata specification,
    https://packaging.python.org/en/latest/specifications/core-metadata/)."""
    metadata = "METADATA" if dist_dir.endswith(".dist-info") else "PKG-INFO"
    name = version = None
    data = read_small(os.path.join(folder, dist_dir, metadata), _LIMIT)
    for line in (data or b"").decode("utf-8", errors="replace").splitlines():
        if not line.strip():  # the headers end at the first blank line
            break
        key, _, value = line.partition(":")
        if key == "Name":
            name = clean_text(value.strip(), _SHOWN)
        elif key == "Version":
            version = clean_text(value.strip(), _SHOWN)
        if name and version:
            break
    return name, version


def _normalize(name: str) -> str:
    """The comparable form of a distribution name (PEP 503 normalization)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def _section(text: str, group: str) -> Iterator[tuple[str, str]]:
    """``(name, value)`` of each entry in the ``[group]`` section of an ``entry_points.txt``
    (an INI file: https://packaging.python.org/en/latest/specifications/entry-points/)."""
    if f"[{group}]" not in text:
        return
    inside = False
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            inside = line == f"[{group}]"
            continue
        if inside and "=" in line:
            name, _, value = line.partition("=")
            yield name.strip(), value.strip()


def _metadata_scan() -> list[EntryPoint]:
    """The entry points as importlib.metadata finds them (zip files and custom finders too), the
    first distribution of a name winning as in ``entry_points()``. importlib.metadata blocks on a
    FIFO and raises on bytes that are not UTF-8 or a link loop, so ``sys.path`` entries that are
    neither folders nor files, and distributions whose metadata files are not regular files
    within :data:`_LIMIT` or cannot be read, are skipped."""
    from importlib.metadata import distributions

    found: list[EntryPoint] = []
    seen: set[str] = set()
    for dist in distributions(path=[entry for entry in sys.path if _searchable(entry)]):
        if not _plain_metadata(dist):
            continue
        try:
            name, version = dist.name, dist.version
            if _normalize(name or "") in seen:
                continue
            seen.add(_normalize(name or ""))
            entries = [e for e in dist.entry_points if e.group == GROUP]
        except (OSError, ValueError):  # UnicodeDecodeError is a ValueError
            continue
        shown_name = clean_text(name, _SHOWN) if name else None
        shown_version = clean_text(version, _SHOWN) if version else None
        found += [EntryPoint(e.name, e.value, shown_name, shown_version) for e in entries]
    return found


def _searchable(entry: object) -> bool:
    """Whether a ``sys.path`` entry is text naming a folder or a file (a zip); importlib.metadata
    would open anything else, and block on a FIFO."""
    if not isinstance(entry, str):
        return False
    try:
        mode = os.stat(entry or ".").st_mode
    except (OSError, ValueError):
        return False
    return stat.S_ISDIR(mode) or stat.S_ISREG(mode)


def _plain_metadata(dist: object) -> bool:
    """Whether each metadata file importlib.metadata may read of a distribution in a folder is
    absent or a regular file within :data:`_LIMIT`. Other distributions (in a zip file, from a
    custom finder) are left to their own reader."""
    # PathDistribution keeps its metadata folder in _path (cpython@v3.11.7:Lib/importlib/metadata/__init__.py).
    folder = getattr(dist, "_path", None)
    if not isinstance(folder, Path):
        return True
    for name in ("entry_points.txt", "METADATA", "PKG-INFO"):
        try:
            info = os.stat(folder / name)
        except (FileNotFoundError, NotADirectoryError):
            continue
        except (OSError, ValueError):  # a link loop, a name too long
            return False
        if not stat.S_ISREG(info.st_mode) or info.st_size > _LIMIT:
            return False
    return True
