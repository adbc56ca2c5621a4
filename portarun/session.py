"""The session's time budget: when it started, the host's limit, and the time left.

The clock starts with this process (the kernel's, in a notebook) unless the host's provider
says each session is a fresh container (:attr:`~portarun.provider.Provider.session_per_container`):
then it starts with the container's PID 1.

``PORTARUN_SESSION_LIMIT`` overrides the host's limit: ``12h``, ``90m``, ``45s``, ``1h30m``, a
number of seconds, or ``none`` for no limit.
"""
from __future__ import annotations

import math
import re
import time
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from ._util.redact import shown_input
from .errors import PortarunError
from .provider import SessionLimits

# A pattern, not compiled here: re compiles it (~0.2 ms) on the first override, which most runs lack.
_DURATION = r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?$"


#: The longest limit accepted: a century, far past any session, and within what datetimes hold.
_LONGEST = 100 * 365 * 24 * 3600


def parse_duration(text: str, source: str = "PORTARUN_SESSION_LIMIT") -> timedelta | None:
    """Parse ``12h``, ``90m``, ``1h30m``, ``45s``, plain seconds, or ``none`` (→ ``None``)."""
    value = text.strip().lower().replace(" ", "")
    if value in ("none", "0", "unlimited", "off"):
        return None
    error = PortarunError(f"{source}={shown_input(text)} is not a duration. Use forms like '12h', '90m', '1h30m', "
                          "'3600' (seconds) or 'none'.")
    try:
        seconds_only: float | None = float(value)
    except ValueError:
        seconds_only = None
    if seconds_only is None:
        match = re.match(_DURATION, value)
        if not value or not match or not any(match.groups()):
            raise error
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        seconds_only = hours * 3600 + minutes * 60 + seconds
    # inf, nan, negative, or so long that the deadline would pass datetime's year 9999
    if not math.isfinite(seconds_only) or seconds_only < 0 or seconds_only > _LONGEST:
        raise error
    return timedelta(seconds=seconds_only)


class SessionInfo(NamedTuple):
    """When the session started, its limit (``None``: unlimited) and where that number comes
    from, whether this process is an interactive notebook kernel, and what the start is
    (``start_source``: this process, or the host's container)."""

    started_at: datetime
    limit: timedelta | None
    source: str
    interactive: bool
    start_source: str = "this process's start"

    @property
    def deadline(self) -> datetime | None:
        """When the host will end the session, or ``None``."""
        return None if self.limit is None else self.started_at + self.limit

    def time_left(self) -> timedelta | None:
        """Time until the deadline (never negative), or ``None`` when unlimited."""
        deadline = self.deadline
        if deadline is None:
            return None
        return max(timedelta(0), deadline - datetime.now(timezone.utc))


def build_session(limits: SessionLimits, started_at: float, interactive: bool, override: str | None,
                  start_source: str = "this process's start") -> SessionInfo:
    """Combine the provider's limits with the ``PORTARUN_SESSION_LIMIT`` override. A start in
    the future or not a finite time (a malformed ``/proc``) counts as now."""
    limit, source = limits.limit, limits.source
    if override:
        limit, source = parse_duration(override), "PORTARUN_SESSION_LIMIT"
    now = time.time()
    if not (math.isfinite(started_at) and 0 < started_at <= now):
        started_at = now
    start = datetime.fromtimestamp(started_at, tz=timezone.utc)
    return SessionInfo(started_at=start, limit=limit, source=source, interactive=interactive,
                       start_source=start_source)
