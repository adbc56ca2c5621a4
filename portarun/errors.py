"""Every error portarun raises derives from :class:`PortarunError`; every warning from
:class:`PortarunWarning`. Messages say what happened and what to do next."""
from __future__ import annotations

from collections.abc import Iterable


class PortarunError(Exception):
    """Base class of every error raised by portarun."""


class UnknownHostError(PortarunError, LookupError):
    """A host name (``PORTARUN_HOST`` or ``detect(host=...)``) names no registered provider."""

    def __init__(self, name: str, known: Iterable[str], source: str = "host") -> None:
        self.name = name
        self.known = tuple(sorted(known))
        super().__init__(
            f"unknown {source} {name!r}; known: {', '.join(self.known)}. "
            "Install the provider plugin for it, or pick one of the known names."
        )


class PluginError(PortarunError):
    """A plugin failed to load or misbehaved while ``PORTARUN_STRICT=1`` is set."""


class PathError(PortarunError):
    """A path role cannot be used: an override points at a missing or unwritable folder."""


class NotAvailableError(PortarunError):
    """A host-specific feature was asked for on a host that does not offer it."""


class PortarunWarning(UserWarning):
    """Base class of every warning emitted by portarun."""
