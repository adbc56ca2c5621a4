"""The ``portarun`` entry points, cached so that ``detect()`` does not pay for a scan of every
installed distribution on each start.

``importlib.metadata.entry_points()`` reads every distribution's metadata and imports the email
parser on the way: with ~100 distributions installed that costs more than starting the
interpreter (benchmarks/bench_detect.py). The result depends only on what is installed, so it
is cached (beside portarun's bytecode, else in the user cache folder), keyed by the interpreter
and the modification times of the ``sys.path`` folders (installing or removing a distribution
adds or removes a ``*.dist-info`` folder in one of them, which changes that folder's mtime); the
script's own folder is left out (see :func:`_fingerprint`). ``PORTARUN_ENTRY_POINT_CACHE=0``
turns the cache off.
"""
from __future__ import annotations

import binascii
import marshal
import os
import sys
from collections.abc import Mapping
from typing import NamedTuple

from ._files import flag, write_bytes_atomic

GROUP = "portarun"
_FORMAT = 1


class EntryPoint(NamedTuple):
    """One entry point of the ``portarun`` group and the distribution that declares it."""

    name: str
    value: str
    distribution: str | None
    version: str | None


def _fingerprint() -> list[list[object]]:
    """``[folder, mtime]`` for every ``sys.path`` entry but the script's folder (or the working
    folder for ``python -c`` and the REPL): that one changes whenever a file is written there,
    and distributions are not installed into it."""
    prints: list[list[object]] = []
    for entry in sys.path[1:]:
        try:
            prints.append([entry, os.stat(entry or ".").st_mtime_ns])
        except OSError:
            prints.append([entry, None])
    return prints


def _scan() -> list[EntryPoint]:
    from importlib.metadata import entry_points

    found: list[EntryPoint] = []
    for ep in entry_points(group=GROUP):
        dist = getattr(ep, "dist", None)
        found.append(EntryPoint(ep.name, ep.value, dist.name if dist else None, dist.version if dist else None))
    return found


def _cache_file() -> str:
    """Beside portarun's bytecode in its ``__pycache__`` where that is writable (as Python's own
    bytecode cache is), else in the user cache folder: importing platformdirs costs ~7 ms
    (it pulls tempfile, shutil and random), more than reading the cache."""
    key = f"{binascii.crc32(sys.executable.encode()):08x}"  # binascii is built in; hashlib loads OpenSSL
    name = f"entry-points-{key}.marshal"  # marshal is built in (json costs ~2 ms to import)
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "__pycache__")
    if os.access(here, os.W_OK) or (not os.path.exists(here) and os.access(os.path.dirname(here), os.W_OK)):
        return os.path.join(here, name)
    from platformdirs import user_cache_dir

    return os.path.join(user_cache_dir("portarun", appauthor=False), name)


def portarun_entry_points(env: Mapping[str, str]) -> list[EntryPoint]:
    """Entry points of the ``portarun`` group, from the cache when nothing was installed or
    removed since it was written. A cache that cannot be read or written is ignored."""
    if not flag(env.get("PORTARUN_ENTRY_POINT_CACHE"), default=True):
        return _scan()
    path = _cache_file()
    fingerprint = _fingerprint()
    try:
        with open(path, "rb") as f:
            cached = marshal.load(f)
        if cached.get("format") == _FORMAT and cached.get("fingerprint") == fingerprint:
            return [EntryPoint(*row) for row in cached["entry_points"]]
    except (OSError, ValueError, TypeError, KeyError, EOFError, AttributeError):
        pass
    found = _scan()
    try:
        write_bytes_atomic(path, marshal.dumps(
            {"format": _FORMAT, "fingerprint": fingerprint, "entry_points": [list(ep) for ep in found]}))
    except OSError:
        pass
    return found
