"""The type of the ``register`` callable passed to ``portarun_register_providers``."""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .provider import Provider

Register = Callable[[type["Provider"]], None]
