"""Loading plugins: the built-ins and every distribution registered under the ``portarun``
entry-point group, with an allow-list, a block-list, and failures turned into warnings.

Environment controls (read from the probe's environment at first use):

- ``PORTARUN_DISABLE_PLUGIN_AUTOLOAD=1``: do not scan entry points; load only the built-ins and
  the names in ``PORTARUN_PLUGINS``.
- ``PORTARUN_PLUGINS=a,b``: allow-list; when set, only these third-party plugins load.
- ``PORTARUN_DISABLE_PLUGINS=a,b``: block-list; built-ins other than ``local`` can be blocked too.
- ``PORTARUN_STRICT=1``: a plugin that fails raises :class:`~portarun.errors.PluginError`
  instead of being skipped with a :class:`~portarun.errors.PortarunWarning`.
"""
from __future__ import annotations

import importlib
import warnings
from collections.abc import Mapping
from types import ModuleType
from typing import NamedTuple

import pluggy

from . import hookspecs
from ._entrypoints import portarun_entry_points
from ._files import flag
from .errors import PluginError, PortarunWarning
from .provider import Provider

#: Built-in plugins, also declared as entry points in setup.cfg. They are loaded by module name
#: when the entry points are not scanned (autoload disabled, or running from a source tree).
BUILTIN_PLUGINS: Mapping[str, str] = {
    "local": "portarun.hosts.local",
    "colab": "portarun.hosts.colab",
    "kaggle": "portarun.hosts.kaggle",
    "paperspace": "portarun.hosts.paperspace",
}
#: Built-in default hook implementations (all ``trylast``), always registered.
DEFAULT_HOOK_MODULES: tuple[str, ...] = ("portarun._defaults",)


class PluginInfo(NamedTuple):
    """One plugin as loaded (or skipped): its entry-point name, module, distribution and
    version, and the error that made it skip, if any."""

    name: str
    module: str
    distribution: str | None
    version: str | None
    builtin: bool
    error: str | None = None

    @property
    def label(self) -> str:
        """``name (dist version)`` for messages."""
        if self.distribution:
            return f"{self.name!r} ({self.distribution} {self.version or '?'})"
        return repr(self.name)


def _names(env: Mapping[str, str], name: str) -> set[str]:
    return {n.strip() for n in env.get(name, "").split(",") if n.strip()}


def fail(message: str, env: Mapping[str, str]) -> None:
    """Report a misbehaving plugin: a warning, or an error under ``PORTARUN_STRICT=1``."""
    if flag(env.get("PORTARUN_STRICT"), default=False):
        raise PluginError(message)
    warnings.warn(message + " Set PORTARUN_STRICT=1 to make this an error.", PortarunWarning, stacklevel=4)


class PluginSet:
    """The loaded plugins and the pluggy manager that holds them."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.pm = pluggy.PluginManager("portarun")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self._providers: dict[str, type[Provider]] | None = None
        #: The plugin that registered each provider class (its module may differ from the
        #: plugin's: a hook module can register providers defined in other modules).
        self._registered_by: dict[type[Provider], PluginInfo] = {}
        self._load()

    # -- loading -------------------------------------------------------------------------
    def _load(self) -> None:
        blocked = _names(self.env, "PORTARUN_DISABLE_PLUGINS")
        if "local" in blocked:
            blocked.discard("local")
            warnings.warn(
                "PORTARUN_DISABLE_PLUGINS lists 'local', the fallback provider; it stays enabled.",
                PortarunWarning,
                stacklevel=3,
            )
        allowed = _names(self.env, "PORTARUN_PLUGINS")
        autoload = not flag(self.env.get("PORTARUN_DISABLE_PLUGIN_AUTOLOAD"), default=False)
        for module in DEFAULT_HOOK_MODULES:
            self.pm.register(importlib.import_module(module), name=module)
        found: dict[str, tuple[str, str | None, str | None]] = {}
        if autoload or allowed:
            for ep in portarun_entry_points(self.env):
                found.setdefault(ep.name, (ep.value, ep.distribution, ep.version))
        for name, module in BUILTIN_PLUGINS.items():
            if name not in blocked:
                self._register(PluginInfo(name, module, "portarun", _own_version(), builtin=True))
        for name, (module, dist, version) in sorted(found.items()):
            if name in BUILTIN_PLUGINS and module == BUILTIN_PLUGINS[name]:
                continue
            if name in blocked or (allowed and name not in allowed) or (not autoload and name not in allowed):
                continue
            self._register(PluginInfo(name, module, dist, version, builtin=False))

    def _register(self, info: PluginInfo) -> None:
        try:
            obj: ModuleType = importlib.import_module(info.module.split(":")[0])
            self.pm.register(obj, name=info.name)
        except Exception as exc:  # a broken plugin must not break detection
            self.infos.append(_replace_error(info, f"{type(exc).__name__}: {exc}"))
            fail(f"portarun plugin {info.label} failed to load and was skipped: {type(exc).__name__}: {exc}.", self.env)
            return
        self.infos.append(info)

    # -- providers -----------------------------------------------------------------------
    def providers(self) -> dict[str, type[Provider]]:
        """Provider classes by name, collected once through ``portarun_register_providers``."""
        if self._providers is None:
            collected: dict[str, type[Provider]] = {}
            for impl in self.pm.hook.portarun_register_providers.get_hookimpls():
                info = self.info_for(impl.plugin_name)

                def register(cls: type[Provider], _info: PluginInfo = info) -> None:
                    self._add_provider(collected, cls, _info)

                try:
                    impl.function(register=register)
                except PluginError:
                    raise
                except Exception as exc:
                    fail(f"portarun plugin {info.label} raised in portarun_register_providers: "
                         f"{type(exc).__name__}: {exc}; its providers were skipped.", self.env)
            self._providers = dict(sorted(collected.items()))
        return self._providers

    def _add_provider(self, into: dict[str, type[Provider]], cls: object, info: PluginInfo) -> None:
        if not (isinstance(cls, type) and issubclass(cls, Provider) and isinstance(getattr(cls, "name", None), str)):
            fail(f"portarun plugin {info.label} registered {cls!r}, which is not a portarun.Provider "
                 "subclass with a string `name`; it was skipped.", self.env)
            return
        if cls.name in into and into[cls.name] is not cls:
            fail(f"portarun plugin {info.label} registered a second provider named {cls.name!r} "
                 f"(the first is {into[cls.name].__module__}.{into[cls.name].__qualname__}); the "
                 "second was skipped. Block one with PORTARUN_DISABLE_PLUGINS.", self.env)
            return
        into[cls.name] = cls
        self._registered_by[cls] = info

    def info_for(self, plugin_name: str) -> PluginInfo:
        """The :class:`PluginInfo` of a registered plugin (a plain one for ad-hoc plugins)."""
        for info in self.infos:
            if info.name == plugin_name:
                return info
        return PluginInfo(plugin_name, plugin_name, None, None, builtin=False)

    def info_for_provider(self, cls: type[Provider]) -> PluginInfo:
        """The plugin that registered provider ``cls``."""
        if cls in self._registered_by:
            return self._registered_by[cls]
        for info in self.infos:
            if info.module.split(":")[0] == cls.__module__:
                return info
        return PluginInfo(cls.name, cls.__module__, None, None, builtin=False)


def _replace_error(info: PluginInfo, error: str) -> PluginInfo:
    return PluginInfo(info.name, info.module, info.distribution, info.version, info.builtin, error)


def _own_version() -> str:
    from ._version import __version__

    return __version__


def distribution_of(module: str) -> tuple[str, str] | None:
    """``(distribution, version)`` of the plugin that registered a provider defined in ``module``
    (or whose entry point names ``module``), if loaded."""
    from .runtime import plugin_set

    plugins = plugin_set()
    candidates = [plugins.info_for_provider(cls) for cls in plugins.providers().values() if cls.__module__ == module]
    candidates += [info for info in plugins.infos if info.module.split(":")[0] == module]
    for info in candidates:
        if info.distribution:
            return info.distribution, info.version or "?"
    return None
