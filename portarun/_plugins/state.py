"""portarun's process-wide state, in one object: :data:`STATE`.

It holds what ``detect()`` keeps between calls (the loaded plugin sets, the runtimes it
returned, the machine's probe) and what :mod:`portarun.testing` changes for a while (the
simulations' probes, plugins registered for a test). Code that changes it calls the methods
below, which take the lock; nothing else assigns to it.

This module sits below the plugin machinery: it imports only :mod:`portarun.probe`, so that
:mod:`portarun.provider`, :mod:`portarun._plugins.manager` and :mod:`portarun.runtime` can all import
it at the top without importing one another in a circle.
"""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from ..probe import Probe

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .manager import PluginSet

#: The ``detect()`` arguments (host, project, device) of a call without arguments: the key of
#: the runtime a simulation hands out.
DEFAULT_KEY: tuple[Any, ...] = (None, None, None)


class _Frame:
    """One simulation: its probe, and the cached runtimes it hid (given back when it ends)."""

    __slots__ = ("probe", "saved")

    def __init__(self, probe: Probe, saved: dict[tuple[Any, ...], Runtime]) -> None:
        self.probe = probe
        self.saved = saved


class State:
    """What one process remembers between ``detect()`` calls. All methods are thread-safe."""

    def __init__(self) -> None:
        #: Held while detecting, loading plugins or changing anything here (re-entrant: loading
        #: plugins happens inside a detection).
        self.lock = threading.RLock()
        #: Loaded plugin sets, keyed by the values of the plugin-control variables.
        self.plugin_sets: dict[tuple[str, ...], PluginSet] = {}
        #: Runtimes ``detect()`` returned, keyed by its arguments (:data:`DEFAULT_KEY` for none).
        self.cache: dict[tuple[Any, ...], Runtime] = {}
        #: Plugins registered in every plugin set (``portarun.testing.plugin``), with their names.
        self.extra_plugins: list[tuple[object, str]] = []
        self._frames: list[_Frame] = []
        self._real: Probe | None = None

    # -- the probe ------------------------------------------------------------------------
    def current_probe(self, *, fresh: bool = False) -> Probe:
        """The probe ``detect()`` uses now: the innermost simulation's, or this machine's (read
        once per process; ``fresh=True`` reads the machine again)."""
        with self.lock:
            if self._frames:
                return self._frames[-1].probe
            if fresh or self._real is None:
                self._real = Probe.real()
            return self._real

    def simulation_depth(self) -> int:
        """How many simulations are open (0: ``detect()`` sees this machine)."""
        with self.lock:
            return len(self._frames)

    def push_probe(self, probe: Probe) -> None:
        """Make ``detect()`` see ``probe`` until :meth:`pop_probe`: the cached runtimes are set
        aside, so the next ``detect()`` detects afresh on ``probe``."""
        with self.lock:
            self._frames.append(_Frame(probe, dict(self.cache)))
            self.cache.clear()

    def pop_probe(self, probe: Probe) -> None:
        """End the simulation of ``probe`` (the innermost one): its runtimes are forgotten and
        the ones it set aside come back. Does nothing when ``probe`` is not the innermost."""
        with self.lock:
            if not self._frames or self._frames[-1].probe is not probe:
                return
            frame = self._frames.pop()
            self.cache.clear()
            self.cache.update(frame.saved)

    # -- cached runtimes ------------------------------------------------------------------
    def cached(self, key: tuple[Any, ...]) -> Runtime | None:
        """The runtime ``detect()`` returned for ``key``, if still cached."""
        with self.lock:
            return self.cache.get(key)

    def remember(self, key: tuple[Any, ...], runtime: Runtime) -> None:
        """Cache ``runtime`` as ``detect()``'s answer for ``key``."""
        with self.lock:
            self.cache[key] = runtime

    def forget_detection(self) -> None:
        """Forget the cached runtimes and the machine's probe, keeping the loaded plugins: what a
        forked child does, whose variables are not its parent's."""
        with self.lock:
            self.cache.clear()
            self._real = None

    # -- plugins --------------------------------------------------------------------------
    def add_plugin(self, obj: object, name: str) -> None:
        """Register ``obj`` in every plugin set from now on (and reload them)."""
        with self.lock:
            self.extra_plugins.append((obj, name))
            self.reset()

    def remove_plugin(self, obj: object, name: str) -> None:
        """Undo :meth:`add_plugin` (and reload the plugin sets)."""
        with self.lock:
            self.extra_plugins.remove((obj, name))
            self.reset()

    def distribution_of(self, module: str) -> tuple[str, str] | None:
        """``(distribution, version)`` of the plugin that registered a provider defined in
        ``module`` (or whose entry point names ``module``), in the plugin sets loaded so far."""
        with self.lock:
            loaded = list(self.plugin_sets.values())
        for plugins in loaded:
            candidates = [plugins.info_for_provider(cls) for cls in plugins.providers().values()
                          if cls.__module__ == module]
            candidates += [info for info in plugins.infos if info.module.split(":")[0] == module]
            for info in candidates:
                if info.distribution:
                    return info.distribution, info.version or "?"
        return None

    # -- everything -----------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the loaded plugins, the cached runtimes and the machine's probe (simulations
        and added plugins stay): the next ``detect()`` loads and detects afresh."""
        with self.lock:
            self.plugin_sets.clear()
            self.cache.clear()
            self._real = None


#: The one :class:`State` of this process.
STATE = State()
