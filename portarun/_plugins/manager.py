"""Loading plugins: the built-ins and every distribution registered under the ``portarun``
entry-point group, with an allow-list, a block-list, and failures turned into warnings.

Environment controls (read from the probe's environment at first use):

- ``PORTARUN_DISABLE_PLUGIN_AUTOLOAD=1``: do not scan entry points; load only the built-ins and
  the names in ``PORTARUN_PLUGINS``.
- ``PORTARUN_PLUGINS=a,b``: allow-list; when set, only these third-party plugins load.
- ``PORTARUN_DISABLE_PLUGINS=a,b``: block-list; built-ins other than ``local`` can be blocked too.
- ``PORTARUN_STRICT=1``: a plugin that fails raises :class:`~portarun.errors.PluginError`
  instead of being skipped with a :class:`~portarun.errors.PortarunWarning`.
- ``PORTARUN_PLUGIN_TIMEOUT=5``: seconds each third-party import, registration and ``detect()``
  may take (:mod:`portarun._plugins.isolation`, which also keeps plugins from changing the process).

A hook implementation whose name is not a portarun hook (a misspelling) is reported once the
plugins are loaded (:meth:`PluginSet.check_pending`).

What a plugin hands portarun is checked before use: provider classes when they are registered
(:func:`provider_problem`), detections when they are ranked (:func:`checked_detection`).
"""
from __future__ import annotations

import copy
import functools
import importlib
import math
import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import timedelta
from types import MappingProxyType, ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

import pluggy

from .. import hookspecs
from .._util.files import flag
from ..errors import PluginError, warn
from ..provider import MATCH_THRESHOLD, Detection, HostLocations, Provider, SessionLimits
from .entrypoints import portarun_entry_points
from .isolation import MAX_LINE, Guard, Outcome, Worker, budget, clean_text, describe_error
from .state import STATE

if TYPE_CHECKING:
    from ..probe import Probe

#: Built-in plugins, also declared as entry points in setup.cfg. They are loaded by module name
#: when the entry points are not scanned (autoload disabled, or running from a source tree).
BUILTIN_PLUGINS: Mapping[str, str] = {
    "local": "portarun.hosts.local",
    "colab": "portarun.hosts.colab",
    "kaggle": "portarun.hosts.kaggle",
    "paperspace": "portarun.hosts.paperspace",
}
#: Built-in default hook implementations (all ``trylast``), always registered.
DEFAULT_HOOK_MODULES: tuple[str, ...] = ("portarun._plugins.defaults",)
#: The variables that decide which plugins load: one plugin set per combination of their values.
PLUGIN_VARS = ("PORTARUN_DISABLE_PLUGIN_AUTOLOAD", "PORTARUN_PLUGINS", "PORTARUN_DISABLE_PLUGINS", "PORTARUN_STRICT",
               "PORTARUN_PLUGIN_TIMEOUT")


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
    warn(message + " Set PORTARUN_STRICT=1 to make this an error.")


def plugin_set(env: Mapping[str, str] | None = None) -> PluginSet:
    """The loaded plugins for an environment's plugin-control variables (the current probe's
    by default), loaded once per process and kept in :data:`portarun._plugins.state.STATE`."""
    env = STATE.current_probe().env if env is None else env
    key = tuple(env.get(v, "") for v in PLUGIN_VARS)
    with STATE.lock:
        plugins = STATE.plugin_sets.get(key)
        if plugins is None:
            plugins = STATE.plugin_sets[key] = PluginSet(env, extra=STATE.extra_plugins)
        return plugins


class PluginSet:
    """The loaded plugins and the pluggy manager that holds them: the built-ins, the entry
    points the environment allows, then ``extra`` (objects registered as they are, with their
    names: :func:`portarun.testing.plugin`'s)."""

    def __init__(self, env: Mapping[str, str], extra: Sequence[tuple[object, str]] = ()) -> None:
        self.env = env
        self.pm = pluggy.PluginManager("portarun")
        self.pm.add_hookspecs(hookspecs)
        self.infos: list[PluginInfo] = []
        self._providers: dict[str, type[Provider]] | None = None
        #: The plugin that registered each provider class (its module may differ from the
        #: plugin's: a hook module can register providers defined in other modules).
        self._registered_by: dict[type[Provider], PluginInfo] = {}
        #: Providers whose ``detect()`` overran the budget and has not returned yet.
        self._late: dict[type[Provider], threading.Event] = {}
        self.budget, problem = budget(env)
        if problem:
            warn(problem)
        self._worker = Worker(self.budget)
        try:
            self._load()
        finally:
            self._worker.close()
        for obj, name in extra:
            self.pm.register(obj, name=name)
        self.check_pending()

    # -- loading -------------------------------------------------------------------------
    def _load(self) -> None:
        blocked = _names(self.env, "PORTARUN_DISABLE_PLUGINS")
        if "local" in blocked:
            blocked.discard("local")
            warn("PORTARUN_DISABLE_PLUGINS lists 'local', the fallback provider; it stays enabled.")
        allowed = _names(self.env, "PORTARUN_PLUGINS")
        autoload = not flag(self.env.get("PORTARUN_DISABLE_PLUGIN_AUTOLOAD"), default=False)
        for module in DEFAULT_HOOK_MODULES:
            self.pm.register(importlib.import_module(module), name=module)
        found: dict[str, tuple[str, str | None, str | None]] = {}
        if autoload or allowed:
            for ep in portarun_entry_points(self.env):
                found.setdefault(ep.name, (ep.value, ep.distribution, ep.version))
        guard = Guard(paths=False)
        for name, module in BUILTIN_PLUGINS.items():
            if name not in blocked:
                self._register(PluginInfo(name, module, "portarun", _own_version(), builtin=True), guard)
        for name, (module, dist, version) in sorted(found.items()):
            if name in BUILTIN_PLUGINS and module == BUILTIN_PLUGINS[name]:
                continue
            if name in blocked or (allowed and name not in allowed) or (not autoload and name not in allowed):
                continue
            self._register(PluginInfo(name, module, dist, version, builtin=False), guard)

    def _register(self, info: PluginInfo, guard: Guard) -> None:
        module = info.module.split(":")[0]
        outcome, changed = self.guarded(info, lambda: importlib.import_module(module), guard)
        self._changed(info, "while loading", changed, "")
        problem = outcome.problem(self.budget)
        if problem is None:
            try:
                self.pm.register(outcome.value if info.builtin else self._isolate_paths_hook(outcome.value, info),
                                 name=info.name)
            except Exception as exc:  # pluggy refuses a name taken or a malformed hook
                problem = describe_error(exc)
        if problem is not None:
            self.infos.append(_replace_error(info, problem))
            fail(f"portarun plugin {info.label} failed to load and was skipped: {problem}.", self.env)
            return
        self.infos.append(info)

    def _isolate_paths_hook(self, module: Any, info: PluginInfo) -> Any:
        """``module``, or where it implements ``portarun_resolve_paths`` (which ``detect()``
        calls), a copy whose implementation runs isolated like ``detect()``: within the time
        budget, exceptions caught, the process guarded. If it fails or answers something other
        than a :class:`~portarun.paths.Paths` or ``None``, it is reported and answers ``None``,
        so the next implementation (at last portarun's own) decides the paths."""
        hook = getattr(module, "portarun_resolve_paths", None)
        options = getattr(hook, "portarun_impl", None)
        if not (callable(hook) and isinstance(options, dict) and isinstance(module, ModuleType)) or \
                options.get("wrapper") or options.get("hookwrapper"):
            return module  # a wrapper must yield to pluggy itself: it is left as it is

        @functools.wraps(hook)  # the same hookimpl options and argument names for pluggy
        def portarun_resolve_paths(*args: Any) -> Any:
            from ..paths import Paths

            outcome, changed = self.guarded(info, lambda: hook(*args), Guard(paths=True), Worker(self.budget))
            problem = outcome.problem(self.budget)
            if problem is None and changed:
                problem = f"it changed the process: {', '.join(changed)} (put back)"
            if problem is None and not (outcome.value is None or isinstance(outcome.value, Paths)):
                problem = f"it returned {type(outcome.value).__name__}, not a portarun.paths.Paths or None"
            if problem is not None:
                fail(f"portarun plugin {info.label} failed in portarun_resolve_paths: {problem}; the paths come "
                     "from the next implementation (portarun's own unless another plugin answers).", self.env)
                return None
            return outcome.value

        isolated = ModuleType(module.__name__, module.__doc__)
        isolated.__dict__.update(vars(module))
        isolated.__dict__["portarun_resolve_paths"] = portarun_resolve_paths
        return isolated

    def guarded(self, info: PluginInfo, call: Callable[[], Any], guard: Guard,
                worker: Worker | None = None) -> tuple[Outcome, list[str]]:
        """Run plugin code: inline for portarun's own, else within the time budget, with every
        exception caught and the process state put back afterwards. Returns the outcome and
        what the code changed in the process (:class:`~portarun._plugins.isolation.ProcessState`)."""
        if info.builtin:
            return Worker(None).call(call), []
        return guard.run(worker or self._worker, call)

    def check_pending(self) -> None:
        """Report each hook implementation whose name is no portarun hook (pluggy's
        ``check_pending()``: it would never be called), naming the plugin and the closest hook
        names, and each loaded plugin that implements no hook at all (its functions lack the
        ``hookimpl`` mark), through :func:`fail` like any other plugin fault. Implementations
        marked ``optionalhook=True`` are left alone, as pluggy leaves them."""
        known = sorted(name for name in vars(hookspecs) if name.startswith("portarun_"))
        for info in self.infos:
            plugin = self.pm.get_plugin(info.name)
            if info.error is None and plugin is not None and not self.pm.get_hookcallers(plugin):
                unmarked = sorted(name for name in getattr(plugin, "__dict__", {}) if name in known)
                why = f" ({', '.join(unmarked)} without the @portarun.hookimpl mark)" if unmarked else ""
                fail(f"portarun plugin {info.label} implements no portarun hook{why}, so it does nothing.", self.env)
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError:
            pass
        else:
            return
        import difflib

        for name, caller in sorted(vars(self.pm.hook).items()):
            if name.startswith("_") or not isinstance(caller, pluggy.HookCaller) or caller.has_spec():
                continue
            for impl in caller.get_hookimpls():
                if impl.optionalhook:
                    continue
                close = difflib.get_close_matches(name, known, n=1)
                fail(f"portarun plugin {self.info_for(impl.plugin_name).label} implements {clean_text(name, 100)!r}, "
                     "which is not a portarun hook, so it is never called"
                     f"{f' (did you mean {close[0]!r}?)' if close else ''}. The hooks are: {', '.join(known)}.",
                     self.env)

    def _changed(self, info: PluginInfo, during: str, changed: list[str], consequence: str) -> None:
        if changed:
            fail(f"portarun plugin {info.label} changed the process {during}: {', '.join(changed)}; portarun put "
                 f"it back{consequence}. Plugins must leave the process as they found it.", self.env)

    # -- providers -----------------------------------------------------------------------
    def providers(self) -> dict[str, type[Provider]]:
        """Provider classes by name, collected once through ``portarun_register_providers``:
        portarun's own plugins first, then the others in the order they were loaded, so that
        when two providers share a name the built-in (else the first loaded) is kept whatever
        ``tryfirst``/``trylast`` say."""
        if self._providers is None:
            order = {info.name: i for i, info in enumerate(self.infos)}
            impls = sorted(self.pm.hook.portarun_register_providers.get_hookimpls(),
                           key=lambda impl: (not self.info_for(impl.plugin_name).builtin,
                                             order.get(impl.plugin_name, len(order)), impl.plugin_name))
            collected: dict[str, type[Provider]] = {}
            worker, guard = Worker(self.budget), Guard(paths=True)
            try:
                for impl in impls:
                    self._collect(impl.function, self.info_for(impl.plugin_name), collected, worker, guard)
            finally:
                worker.close()
            self._providers = dict(sorted(collected.items()))
        return self._providers

    def _collect(self, hook: Callable[..., object], info: PluginInfo, into: dict[str, type[Provider]],
                 worker: Worker, guard: Guard) -> None:
        # What the hook registers is checked here, after it returns: a hook abandoned past the
        # budget may still call ``register`` from its thread, and that must change nothing.
        registered: list[object] = []
        outcome, changed = self.guarded(info, lambda: hook(register=registered.append), guard, worker)
        self._changed(info, "in portarun_register_providers", changed, "")
        problem = outcome.problem(self.budget)
        if problem is not None:
            fail(f"portarun plugin {info.label} failed in portarun_register_providers: {problem}; "
                 "its providers were skipped.", self.env)
            return
        for cls in list(registered):
            self._add_provider(into, cls, info)

    def _add_provider(self, into: dict[str, type[Provider]], cls: object, info: PluginInfo) -> None:
        problem = provider_problem(cls)
        if problem is not None:
            fail(f"portarun plugin {info.label} registered {describe(cls)}, which {problem}; it was skipped.", self.env)
            return
        assert isinstance(cls, type) and issubclass(cls, Provider)  # provider_problem checked it
        first = into.get(cls.name)
        if first is not None and first is not cls:
            fail(f"portarun plugin {info.label} registered a second provider named {cls.name!r}, which plugin "
                 f"{self._registered_by[first].label} already registered "
                 f"({first.__module__}.{first.__qualname__}); portarun keeps the "
                 f"{'built-in' if self._registered_by[first].builtin else 'first loaded'} one and skipped "
                 f"{cls.__module__}.{cls.__qualname__}. Block one with PORTARUN_DISABLE_PLUGINS.", self.env)
            return
        into[cls.name] = cls
        self._registered_by[cls] = info

    # -- detection -----------------------------------------------------------------------
    def detections(self, probe: Probe) -> Iterator[tuple[type[Provider], Detection | None, str | None]]:
        """Each provider's checked detection, or the error that disqualified it (already
        reported: a warning, or :class:`PluginError` under ``PORTARUN_STRICT=1``).

        Providers see ``probe`` with a read-only copy of its environment. Third-party
        ``detect()`` runs within the time budget of ``probe``'s ``PORTARUN_PLUGIN_TIMEOUT``."""
        view = read_only(probe)
        limit, problem = budget(probe.env)
        if problem:
            warn(problem)
        worker, guard = Worker(limit), Guard(paths=True)
        try:
            for cls in self.providers().values():
                info = self.info_for_provider(cls)
                late = self._late.get(cls)
                if late is not None and not late.is_set():
                    fail(f"provider {cls.name!r} from plugin {info.label} is still running the detect() that "
                         "overran its time budget in an earlier detection; it was skipped.", self.env)
                    yield cls, None, "still running an earlier detect()"
                    continue
                outcome, changed = self.guarded(info, _checked_detect(cls.detect, view), guard, worker)
                if outcome.done is not None:
                    self._late[cls] = outcome.done
                problem = outcome.problem(limit)
                if changed and problem is None:  # what it detected may rest on what it changed
                    self._changed(info, f"in {cls.name!r}.detect()", changed, ", and skipped the provider")
                    yield cls, None, f"changed the process: {', '.join(changed)}"
                    continue
                self._changed(info, f"in {cls.name!r}.detect()", changed, "")
                if problem is not None:
                    what = f"raised in detect(): {problem}" if outcome.error is not None else f"detect() {problem}"
                    fail(f"provider {cls.name!r} from plugin {info.label} {what}; it was skipped.", self.env)
                    yield cls, None, problem
                    continue
                detection, error = outcome.value
                if error is not None:
                    fail(f"provider {cls.name!r} from plugin {info.label} {error} from detect(), not a "
                         "portarun.Detection (a confidence in [0, 1], a tuple of evidence strings) or None; it "
                         "was skipped.", self.env)
                elif not info.builtin and detection is not None and (
                        detection.confidence >= MATCH_THRESHOLD or cls.fallback):
                    error = self._preflight(cls, info, view, guard, worker, limit)
                    detection = None if error else detection
                yield cls, detection, error
        finally:
            worker.close()

    def _preflight(self, cls: type[Provider], info: PluginInfo, probe: Probe, guard: Guard, worker: Worker,
                   limit: float | None) -> str | None:
        """A third-party provider that may win is asked, within its budget, what ``detect()`` will
        ask the winner (where its data lives, its session's limit and start, its CPU hint);
        one that fails or answers wrongly is skipped here, so that it cannot break ``detect()``
        later. Returns the error, already reported."""
        outcome, changed = self.guarded(info, lambda: _instance_problem(cls, probe), guard, worker)
        if outcome.done is not None:
            self._late[cls] = outcome.done
        problem = outcome.problem(limit) or outcome.value or (
            f"changed the process: {', '.join(changed)}" if changed else None)
        if problem is not None:
            fail(f"provider {cls.name!r} from plugin {info.label} matched, but {problem}; it was skipped.", self.env)
        return problem

    def forced_problem(self, cls: type[Provider], probe: Probe) -> str | None:
        """Why a third-party provider forced by name (``PORTARUN_HOST``, ``detect(host=...)``)
        without matching fails what ``detect()`` asks the winner (it raises or overruns its time
        budget), asked in isolation as one that matches is (:meth:`_preflight`); ``None`` when it
        answers, or is built in. Answers of the wrong type are left to the provider contract
        (:mod:`portarun.testing.contract`) to report."""
        info = self.info_for_provider(cls)
        if info.builtin:
            return None
        limit, _ = budget(probe.env)
        worker = Worker(limit)
        try:
            view = read_only(probe)
            outcome, _ = self.guarded(info, lambda: _instance_problem(cls, view), Guard(paths=True), worker)
        finally:
            worker.close()
        if outcome.done is not None:
            self._late[cls] = outcome.done
        return outcome.problem(limit)

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


#: A provider's ``name`` is typed in ``PORTARUN_HOST`` and shown in reports.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
#: Limits on what a detection's evidence may put into reports and ``explain()``.
MAX_EVIDENCE_LINES = 50


def provider_problem(cls: object) -> str | None:
    """Why ``cls`` cannot be a provider (``None`` when it can): it must be a concrete
    :class:`Provider` subclass with a valid ``name`` and ``display_name`` and well-typed
    ``priority``, ``fallback`` and ``marker_modules``."""
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        return "is not a portarun.Provider subclass"
    abstract = sorted(getattr(cls, "__abstractmethods__", ()))
    if abstract:
        return f"is abstract (it does not implement {', '.join(abstract)})"
    name = getattr(cls, "name", None)
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        return (f"has no valid `name` (got {describe(name)}; it must be 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit)")
    display = getattr(cls, "display_name", None)
    if not isinstance(display, str) or not display.strip() or not display.isprintable() or len(display) > 100:
        return f"has no valid `display_name` (got {describe(display)}; it must be printable text of 1-100 characters)"
    if type(getattr(cls, "priority", None)) is not int:
        return f"has a `priority` that is not an int ({describe(getattr(cls, 'priority', None))})"
    if type(getattr(cls, "fallback", None)) is not bool:
        return f"has a `fallback` that is not a bool ({describe(getattr(cls, 'fallback', None))})"
    markers = getattr(cls, "marker_modules", None)
    if not isinstance(markers, tuple) or not all(isinstance(m, str) for m in markers):
        return "has `marker_modules` that is not a tuple of module names"
    return None


def checked_detection(result: object) -> tuple[Detection | None, str | None]:
    """A provider's ``detect()`` result as portarun may use it, or what is wrong with it.

    The confidence must be a real number in [0, 1] and the evidence a tuple (or list) of
    strings; each evidence line is cleaned for printing (:func:`clean_text`) and at most
    :data:`MAX_EVIDENCE_LINES` are kept. What is returned is made of plain ``float``, ``tuple``
    and ``str``: subclasses (a ``numpy.float64`` is fine) are converted, so that no method of
    the plugin's runs after this. Third-party results are checked in the plugin's worker
    thread, within its time budget, since checking them runs such methods."""
    if result is None:
        return None, None
    if not isinstance(result, Detection):
        return None, f"returned {type(result).__name__}"
    confidence, evidence = tuple.__getitem__(result, 0), tuple.__getitem__(result, 1)
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)):
        return None, f"returned a confidence of type {type(confidence).__name__}"
    try:
        value = float.__float__(confidence) if isinstance(confidence, float) else int.__float__(confidence)
    except OverflowError:
        value = math.inf
    if not (math.isfinite(value) and 0 <= value <= 1):
        return None, f"returned confidence {value!r}, outside [0, 1]"
    lines = _plain_lines(evidence)
    if lines is None:
        return None, "returned evidence that is not a tuple of strings"
    if len(lines) > MAX_EVIDENCE_LINES:
        lines = (*lines[:MAX_EVIDENCE_LINES], f"note {len(lines) - MAX_EVIDENCE_LINES} more evidence lines not shown")
    fields: dict[str, Any] = {"confidence": value, "evidence": lines}
    if "missing" in Detection._fields and len(result) == len(Detection._fields):
        # the strong markers looked for and not found, printed by explain()
        missing = _plain_lines(tuple.__getitem__(result, Detection._fields.index("missing")))
        if missing is None:
            return None, "returned `missing` markers that are not a tuple of strings"
        fields["missing"] = missing[:MAX_EVIDENCE_LINES]
    return Detection(**fields), None


def _plain_lines(lines: object) -> tuple[str, ...] | None:
    """``lines`` as a tuple of plain, cleaned ``str``, or ``None`` when it is not a tuple or
    list of strings."""
    if not isinstance(lines, (tuple, list)):
        return None
    items = tuple.__iter__(lines) if isinstance(lines, tuple) else list.__iter__(lines)
    plain: list[str] = []
    for line in items:
        if not isinstance(line, str):
            return None
        plain.append(clean_text(str.__str__(line), MAX_LINE) if len(plain) < MAX_EVIDENCE_LINES else "")
    return tuple(plain)


def describe(obj: object) -> str:
    """A short, safe description of a value a plugin handed over (its repr may be anything)."""
    if isinstance(obj, type):
        return clean_text(f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', '?')}", 200)
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return clean_text(repr(obj), 80)
    return f"a {type(obj).__name__}"


def read_only(probe: Probe) -> Probe:
    """``probe`` as providers see it: the same facts (the already cached ones included) with a
    read-only copy of its environment, so one provider cannot change what the next one, or
    the rest of the process, sees. (A copy and not ``dataclasses.replace``: that would lose
    the cached facts and read them again.)"""
    view = copy.copy(probe)
    object.__setattr__(view, "env", MappingProxyType(dict(probe.env)))
    return view


def _instance_problem(cls: type[Provider], probe: Probe) -> str | None:
    """What is wrong with the answers of a provider instance on ``probe``, or ``None``."""
    provider = cls(probe)  # third-party code: check what it really returns
    where: object = provider.locations("portarun-check")
    if not isinstance(where, HostLocations):
        return f"its locations() returned {type(where).__name__}, not a portarun.HostLocations"
    for role in ("input", "scratch", "output", "persist", "cache"):
        if not isinstance(getattr(where, role), (str, os.PathLike)):
            return f"its locations().{role} is {type(getattr(where, role)).__name__}, not a path or URL"
    if not isinstance(getattr(where, "persist_warning"), (str, type(None))):
        return "its locations().persist_warning is not text or None"
    limits: object = provider.session_limits()
    if not isinstance(limits, SessionLimits) or not isinstance(limits.limit, (timedelta, type(None))) or (
            limits.limit is not None and limits.limit <= timedelta(0)):
        return "its session_limits() is not a SessionLimits with a positive timedelta or None"
    start: object = provider.session_start()
    if isinstance(start, bool) or not isinstance(start, (int, float)) or not math.isfinite(start):
        return f"its session_start() returned {start!r}, not a Unix time"
    hint: object = provider.cpu_hint()
    if hint is not None and (isinstance(hint, bool) or not isinstance(hint, int) or hint < 1):
        return f"its cpu_hint() returned {hint!r}, not a CPU count or None"
    return None


def _checked_detect(detect: Callable[[Probe], object], probe: Probe
                    ) -> Callable[[], tuple[Detection | None, str | None]]:
    return lambda: checked_detection(detect(probe))


def _replace_error(info: PluginInfo, error: str) -> PluginInfo:
    return PluginInfo(info.name, info.module, info.distribution, info.version, info.builtin, error)


def _own_version() -> str:
    from .._version import __version__

    return __version__

