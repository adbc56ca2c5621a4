"""The run's timeline on disk: JSON lines, appended safely, readable while the run goes on.

Each record is one line written with a single ``os.write`` on a file opened with ``O_APPEND``,
so a reader never sees two records interleaved and, at worst, a last line cut short by a crash
or by a write still under way; :func:`read_timeline` skips such a line (and any line that is not
a JSON object) and counts it in :attr:`Timeline.skipped`.

Records (``type``): ``start`` (host, CPUs usable, memory limit, GPUs, quotas, budgets, session
limit, thresholds), ``loader`` (the wrapped loader's ``num_workers``), ``sample`` (one per
interval), ``alert`` (a threshold crossed) and ``end``. docs/monitor.md lists their fields.
"""
from __future__ import annotations

import errno
import json
import math
import os
import stat
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import PortarunError

#: The timeline format's version, in the ``start`` record.
VERSION = 1


class TimelineError(PortarunError):
    """A timeline file cannot be read: missing, not a file, or holding no monitor records."""


def _open_append(path: Path) -> int:
    """A descriptor appending to the file at ``path`` (created if missing). A FIFO planted there
    raises ``OSError`` instead of blocking the run (opening a FIFO to write waits for a reader),
    and so does a block device (a disk the timeline would overwrite); a character device such
    as ``/dev/null`` is written to."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0), 0o644)
    except OSError as exc:
        if exc.errno == errno.ENXIO:  # what a non-blocking open of a FIFO without a reader fails with (open(2))
            raise OSError(errno.ENXIO, "it is a FIFO (named pipe), not a regular file") from None
        raise
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISBLK(mode):
        os.close(fd)
        raise OSError(errno.EINVAL, f"it is a {'FIFO (named pipe)' if stat.S_ISFIFO(mode) else 'block device'}, "
                                    "not a regular file")
    os.set_blocking(fd, True)
    return fd


class TimelineWriter:
    """Appends records to ``path`` (its folder is created on the first write). Thread-safe:
    each record is one ``write`` call on an ``O_APPEND`` descriptor."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._lock = threading.Lock()

    def write(self, record: dict[str, Any]) -> None:
        """Append ``record`` as one JSON line."""
        data = (json.dumps(record, separators=(",", ":"), allow_nan=False, default=str) + "\n").encode()
        with self._lock:
            if self._fd is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fd = _open_append(self.path)
            view = memoryview(data)
            while view:  # a regular file takes it whole; a short write (a full disk) ends in OSError
                written = os.write(self._fd, view)
                view = view[written:]

    def close(self) -> None:
        """Close the file (later writes reopen it)."""
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


@dataclass
class Timeline:
    """A timeline read back: its ``path``, the ``start`` record, the ``samples``, ``alerts``,
    ``loaders``, the ``end`` record (``None`` while the run goes on or after a crash) and how
    many lines were ``skipped`` (torn or foreign)."""

    path: Path
    start: dict[str, Any]
    samples: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    loaders: list[dict[str, Any]] = field(default_factory=list)
    end: dict[str, Any] | None = None
    skipped: int = 0

    @property
    def running(self) -> bool:
        """Whether the run had not ended when the file was read (or died without an end)."""
        return self.end is None


#: A number outside what a float holds is no monitor reading (the writer refuses NaN and infinity).
_LARGEST = 2.0**63


def _number(text: str) -> float | int:
    """A JSON number of a timeline line; ``ValueError`` (the line is skipped) for a float past
    what a float holds (``1e400`` reads as infinity) and an integer of 2**63 or more, which the
    writer never produces (it refuses NaN and infinity; its counts and sizes are below 2**63)."""
    if any(c in text for c in ".eE"):
        value: float | int = float(text)
        ok = math.isfinite(value)
    else:
        value = int(text)
        ok = abs(value) < _LARGEST  # a huge int would overflow a float in the summary
    if not ok:
        raise ValueError(f"{text[:20]} is no monitor reading")
    return value


def _not_a_constant(text: str) -> float:
    raise ValueError(f"{text} is no monitor reading")


#: The longest line read as a record: a sample is a few kB (more with many GPUs and disks).
_LONGEST_LINE = 1 << 20
def _record(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """A JSON object of a timeline with its keys and short strings interned: every sample repeats
    the same keys, role paths and sources, so a long run's samples share one copy of each (a
    200 MB timeline read back takes about 40% less memory)."""
    return {sys.intern(k): sys.intern(v) if type(v) is str and len(v) <= 200 else v for k, v in pairs}


_DECODER = json.JSONDecoder(parse_float=_number, parse_int=_number, parse_constant=_not_a_constant,
                            object_pairs_hook=_record)


def _lines(p: Path) -> Iterator[bytes | None]:
    """The lines of the regular file at ``p``, read as a stream (a long run's timeline is not
    held in memory twice); ``None`` for a line longer than :data:`_LONGEST_LINE`, which is read
    in pieces and dropped. Opened non-blocking, so a FIFO or device planted at the path is
    refused instead of hanging the reader."""
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise TimelineError(f"no monitor timeline at {p}. Timelines are written under rt.paths.output/monitor "
                            "by rt.monitor(); pass the path of a .jsonl file it wrote.") from None
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TimelineError(f"cannot read the monitor timeline {p}: {reason}.") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        what = "a FIFO (named pipe)" if stat.S_ISFIFO(mode) else "a folder" if stat.S_ISDIR(mode) else "a device"
        raise TimelineError(f"{p} is {what}, not a timeline file; pass the path of a .jsonl file that "
                            "rt.monitor() wrote.")
    with open(fd, "rb") as f:
        try:
            while line := f.readline(_LONGEST_LINE + 1):
                if len(line) <= _LONGEST_LINE or line.endswith(b"\n"):
                    yield line
                    continue
                while (rest := f.readline(_LONGEST_LINE)) and not rest.endswith(b"\n"):
                    pass  # the rest of a line too long to be a record, read in pieces and dropped
                yield None
        except OSError as exc:
            raise TimelineError(f"cannot read the monitor timeline {p}: {exc.strerror or exc}.") from None


def read_timeline(path: str | os.PathLike[str]) -> Timeline:
    """Read a timeline, also while the monitor is still appending to it. Raises
    :class:`TimelineError` when the file is missing, not a regular file (a FIFO is refused
    without blocking) or holds no ``start`` record. A line that is not a JSON object, is longer
    than 1 MiB, or holds NaN, infinity or a number past what a float holds, is skipped and counted."""
    p = Path(path)
    start: dict[str, Any] | None = None
    timeline = Timeline(path=p, start={})
    for line in _lines(p):
        if line is None:
            timeline.skipped += 1
            continue
        if not line.strip():
            continue
        try:
            record = _DECODER.decode(line.decode("utf-8"))
        except (ValueError, RecursionError):  # torn, not UTF-8, not JSON, or nested past the stack
            timeline.skipped += 1
            continue
        if not isinstance(record, dict):
            timeline.skipped += 1
            continue
        kind = record.get("type")
        if kind == "start" and start is None:
            start = record
        elif kind == "sample":
            timeline.samples.append(record)
        elif kind == "alert":
            timeline.alerts.append(record)
        elif kind == "loader":
            timeline.loaders.append(record)
        elif kind == "end":
            timeline.end = record
        else:
            timeline.skipped += 1
    if start is None:
        raise TimelineError(f"{p} holds no monitor start record: it is not a timeline written by rt.monitor().")
    timeline.start = start
    return timeline
