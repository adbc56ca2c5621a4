"""Progress bars for long work (staging, checkpoint promotion, autotuning).

tqdm (the ``progress`` extra) draws them, notebook-aware through ``tqdm.auto``; without it,
or when output is not interactive and ``PORTARUN_PROGRESS`` is not ``1``, work runs silently
and callers print their own one-line summary. ``PORTARUN_PROGRESS=0`` turns bars off.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Protocol

from .files import flag


class Bar(Protocol):
    """The part of tqdm's API portarun uses."""

    def update(self, n: float = 1) -> Any: ...

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> Any: ...


class _NoBar:
    def update(self, n: float = 1) -> None:
        return None

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        return None


def enabled() -> bool:
    """Whether bars are drawn: ``PORTARUN_PROGRESS`` if set, else when stderr is a terminal or
    the process is a notebook kernel."""
    return flag(os.environ.get("PORTARUN_PROGRESS"), default=_stderr_is_terminal() or "ipykernel" in sys.modules)


def _stderr_is_terminal() -> bool:
    """Whether stderr is a terminal: not when it is None (the process started with fd 2 closed)
    or a closed file."""
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (ValueError, OSError):  # I/O operation on a closed file
        return False


@contextmanager
def bar(total: float | None, desc: str, unit: str = "B") -> Iterator[Bar]:
    """A progress bar (bytes by default, scaled to KB/MB), or a silent stand-in."""
    if not enabled():
        yield _NoBar()
        return
    try:
        from tqdm.auto import tqdm
    except ImportError:
        yield _NoBar()
        return
    with tqdm(total=total, desc=desc, unit=unit, unit_scale=unit == "B", unit_divisor=1024,
              leave=False, dynamic_ncols=True) as t:
        yield t
