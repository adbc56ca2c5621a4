"""portarun: one ML script, unchanged, on Colab, Kaggle, Paperspace, a laptop or a cluster.

>>> import portarun
>>> rt = portarun.detect()          # where am I running and what do I have?
>>> rt.host.name, rt.paths.checkpoints

Importing portarun is light: names below load on first use, and neither ``import portarun``
nor ``portarun.detect()`` imports torch, torch_xla or IPython.
"""
from __future__ import annotations

from ._version import __version__
from .errors import PortarunError, PortarunWarning

# Not `from typing import TYPE_CHECKING`: importing typing (with re, enum, contextlib) costs more
# than the rest of `import portarun`; type checkers treat a name TYPE_CHECKING as true either way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    # `name as name`: what a type checker may treat as exported (mypy --strict in user code)
    from .errors import NotAvailableError as NotAvailableError
    from .errors import PathError as PathError
    from .errors import PluginError as PluginError
    from .errors import UnknownHostError as UnknownHostError
    from .hookspecs import hookimpl as hookimpl
    from .notebook_launcher import notebook_launch as notebook_launch
    from .paths import Paths as Paths
    from .probe import Probe as Probe
    from .provider import Detection as Detection
    from .provider import Evidence as Evidence
    from .provider import HostLocations as HostLocations
    from .provider import Provider as Provider
    from .provider import SessionLimits as SessionLimits
    from .runtime import HostInfo as HostInfo
    from .runtime import Runtime as Runtime
    from .runtime import detect as detect
    from .runtime import get_plugin_manager as get_plugin_manager
    from .runtime import providers as providers
    from .session import SessionInfo as SessionInfo

_LAZY = {
    "detect": "runtime", "providers": "runtime", "get_plugin_manager": "runtime",
    "Runtime": "runtime", "HostInfo": "runtime",
    "Provider": "provider", "Detection": "provider", "Evidence": "provider",
    "HostLocations": "provider", "SessionLimits": "provider",
    "Paths": "paths", "Probe": "probe", "SessionInfo": "session",
    "UnknownHostError": "errors", "PluginError": "errors", "PathError": "errors",
    "NotAvailableError": "errors", "notebook_launch": "notebook_launcher",
    "hookimpl": "hookspecs",  # the one marker, defined with the hook specifications
}

__all__ = ["__version__", "PortarunError", "PortarunWarning", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        value: Any = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    else:
        raise AttributeError(f"module 'portarun' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
