"""``Register``, the type of ``portarun_register_providers``'s argument, for code that imported it
from here: it is defined with the hook specifications (:mod:`portarun.hookspecs`)."""
from __future__ import annotations

from .hookspecs import Register

__all__ = ["Register"]
