"""When to save (:class:`SavePolicy`) and which checkpoints to keep (:func:`to_delete`)."""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

from ..errors import CheckpointError

Mode = Literal["min", "max"]


def _seconds(value: float | timedelta | None, what: str) -> float | None:
    """A positive, finite duration, or ``None`` (the rule is off); anything else (NaN, infinity,
    zero, a negative number, a bool or a string) raises :class:`CheckpointError`."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise CheckpointError(f"{what} must be a number or a timedelta, got {value!r}; pass None to turn it off.")
    if not math.isfinite(seconds) or seconds <= 0:
        raise CheckpointError(f"{what} must be a positive, finite number, got {value!r}; pass None to turn it off.")
    return seconds


@dataclass
class SavePolicy:
    """Save rules; any one that fires triggers a save.

    ``every_steps``: when ``step`` is a multiple of it. ``every_minutes``: when that long has
    passed since the last save (or since the policy was made). ``before_deadline``: once, when
    the session's time left (``time_left()``, seconds or ``None`` when unlimited) falls to this
    margin (seconds or a timedelta).
    """

    every_steps: int | None = None
    every_minutes: float | None = None
    before_deadline: float | timedelta | None = None
    time_left: Callable[[], float | None] = field(default=lambda: None)
    clock: Callable[[], float] = time.monotonic
    _last_save: float = field(init=False)
    _deadline_fired: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        if self.every_steps is not None and (type(self.every_steps) is not int or self.every_steps <= 0):
            raise CheckpointError(f"every_steps must be a positive integer, got {self.every_steps!r}.")
        _seconds(self.every_minutes, "every_minutes")
        self._margin = _seconds(self.before_deadline, "before_deadline")
        self._last_save = self.clock()

    def reason(self, step: int) -> str | None:
        """Why a save is due at ``step`` (``every_steps``, ``every_minutes``,
        ``before_deadline``), or ``None``."""
        if self._margin is not None and not self._deadline_fired:
            left = self.time_left()
            if left is not None and left <= self._margin:
                self._deadline_fired = True
                return "before_deadline"
        if self.every_steps and step > 0 and step % self.every_steps == 0:
            return "every_steps"
        if self.every_minutes is not None and self.clock() - self._last_save >= self.every_minutes * 60:
            return "every_minutes"
        return None

    def saved(self) -> None:
        """Record that a save happened now (restarts the ``every_minutes`` clock)."""
        self._last_save = self.clock()


@dataclass(frozen=True)
class Candidate:
    """What rotation needs to know about a published checkpoint."""

    name: str
    step: int
    metrics: dict[str, float]


def to_delete(published: Sequence[Candidate], keep_last: int, keep_best: int = 0, metric: str | None = None,
              mode: Mode = "min") -> list[str]:
    """Names to delete so that only the ``keep_last`` newest and the ``keep_best`` best by
    ``metric`` remain. ``published`` is oldest first; the newest is always kept."""
    if not published:
        return []
    keep = {c.name for c in published[-max(keep_last, 1):]}
    if keep_best and metric:
        scored = [c for c in published if metric in c.metrics]
        scored.sort(key=lambda c: c.metrics[metric], reverse=mode == "max")
        keep.update(c.name for c in scored[:keep_best])
    return [c.name for c in published if c.name not in keep]
