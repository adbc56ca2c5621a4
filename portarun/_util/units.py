"""Byte sizes in and out: ``parse_size("64M")`` and ``format_size(67108864)``."""
from __future__ import annotations

import re

from ..errors import PortarunError

_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
#: Sizes are below a signed 64-bit file offset's limit.
_LARGEST = 2**63
# Matched on the stripped text: with ``\s*`` at both ends of the unit, spaces then junk backtracked
# quadratically.
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?$", re.IGNORECASE)


def parse_size(value: int | float | str, what: str = "size") -> int:
    """Bytes from an int or a string like ``64M``, ``30G``, ``12.7GiB``, ``512MB`` (powers of
    1024), below 2**63 (a signed 64-bit file offset). Raises
    :class:`~portarun.errors.PortarunError` on anything else."""
    error = PortarunError(f"{what} {_shown(value)} is not a size; use bytes or a string like '64M', '30G', '1.5T'.")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if not 0 <= value < _LARGEST:  # also false for NaN; int and float compare exactly, never overflow
            raise error
        return int(value)
    match = _SIZE.match(str(value).strip())
    if not match:
        raise error
    number, unit = match.groups()
    size = float(number) * _UNITS[unit.lower()]
    if not 0 <= size < _LARGEST:
        raise error
    return int(size)


def _shown(value: object) -> str:
    """``value`` as a message quotes it: short, whatever its length (a 5000-digit int has no repr)."""
    from .redact import shown_input

    if isinstance(value, str):
        return shown_input(value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= _LARGEST:
        return "a number past 2**63"
    try:
        text = repr(value)
    except ValueError:  # an int with more digits than Python converts to text
        return "a number past 2**63"
    return text if len(text) <= 60 else text[:40] + "…"


def format_size(n: int | None) -> str:
    """``1.5 GiB``-style text for a byte count (``unknown`` for ``None``)."""
    if n is None:
        return "unknown"
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")
