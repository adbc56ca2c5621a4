"""Hook specifications. Implement them in a plugin module with ``@portarun.hookimpl`` and
register the module under the ``portarun`` entry-point group.

Built-in behaviour is registered through the same hooks as ``trylast`` implementations, so a
plugin's implementation wins, and a ``wrapper=True`` implementation can adjust any result.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .paths import Paths
    from .provider import Provider
    from .runtime import Runtime

hookspec = pluggy.HookspecMarker("portarun")


@hookspec
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    """Register provider classes by calling ``register(ProviderClass)`` for each."""


@hookspec(firstresult=True)
def portarun_resolve_paths(provider: Provider, project: str) -> Paths | None:
    """Return the :class:`~portarun.paths.Paths` for this provider and project, or ``None`` to
    leave it to the next implementation (the built-in one applies ``PORTARUN_<ROLE>_DIR``)."""


@hookspec(firstresult=True)
def portarun_resolve_device(runtime: Runtime) -> Any:
    """Return the :class:`~portarun.devices.DeviceInfo` for this runtime, or ``None``."""


@hookspec(firstresult=True)
def portarun_resolve_loader(runtime: Runtime) -> Any:
    """Return the :class:`~portarun.loader.LoaderOptions` for this runtime, or ``None``."""


@hookspec(firstresult=True)
def portarun_submit(runtime: Runtime, path: Any, options: dict[str, Any]) -> Any:
    """Deliver a validated submission file at ``path``; return a ``Submission`` or ``None``."""
