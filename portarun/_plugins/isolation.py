"""Running third-party plugin code so that it cannot break the process around it.

A plugin's import, its ``portarun_register_providers`` call and each of its providers'
``detect()`` run through :class:`Worker`:

- **A time budget.** The call runs in a daemon thread and the caller waits at most
  ``PORTARUN_PLUGIN_TIMEOUT`` seconds (default :data:`DEFAULT_BUDGET`). Python cannot stop a
  thread, so a call that overruns is abandoned: its thread runs on in the background (and dies
  with the process), and the plugin is reported as failed. ``PORTARUN_PLUGIN_TIMEOUT=off``
  runs plugin code in the calling thread without a limit.
- **Every exception is caught**, ``SystemExit`` included, so a plugin cannot exit the user's
  process. ``KeyboardInterrupt`` still propagates: it is the user's Ctrl-C.
- **The process state is guarded** (:class:`ProcessState`): what a plugin must not change, taken
  before the call and compared after it; whatever changed is put back and reported.

portarun's own providers are trusted and run inline, so a default install pays for none of this.
"""
from __future__ import annotations

import builtins
import math
import os
import sys
import threading
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any, NamedTuple, cast

from .._util.redact import printable, redact_start

#: Seconds a plugin's import, registration or ``detect()`` may take. Detection reads a few
#: variables and folders (well under a millisecond for every provider shipped with portarun); the
#: margin covers a plugin that imports a small dependency on a cold disk.
DEFAULT_BUDGET = 5.0
BUDGET_VAR = "PORTARUN_PLUGIN_TIMEOUT"
#: Longest plugin-supplied text (an evidence line, an exception message) portarun prints.
MAX_LINE = 500


def budget(env: Mapping[str, str]) -> tuple[float | None, str | None]:
    """The time budget from ``PORTARUN_PLUGIN_TIMEOUT`` (seconds; ``off`` or ``0``: none), and a
    message when the value is not understood (the default applies then)."""
    raw = env.get(BUDGET_VAR, "").strip()
    if not raw:
        return DEFAULT_BUDGET, None
    if raw.lower() in ("off", "none", "0"):
        return None, None
    try:
        value = float(raw.removesuffix("s"))
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        return DEFAULT_BUDGET, (f"{BUDGET_VAR}={raw!r} is not a number of seconds (like 5 or 0.5) or 'off'; "
                                f"using {DEFAULT_BUDGET:g} s.")
    return min(value, threading.TIMEOUT_MAX), None  # longer waits overflow the lock's clock


class Outcome(NamedTuple):
    """What a plugin call produced: its value, or the exception it raised, or ``timed_out``."""

    value: Any
    error: BaseException | None = None
    #: ``Type: message`` of ``error``, cleaned for printing.
    message: str = ""
    #: Set once an abandoned call returns (``None`` unless the call overran its budget).
    done: threading.Event | None = None

    @property
    def timed_out(self) -> bool:
        """Whether the call overran its budget and was abandoned."""
        return self.done is not None

    def problem(self, budget: float | None) -> str | None:
        """``None`` when the call returned, else what went wrong, for messages."""
        if self.timed_out:
            return f"did not return within {budget:g} s (set {BUDGET_VAR} to change the limit)"
        if self.error is not None:
            return self.message
        return None


def clean_text(text: str, limit: int) -> str:
    """``text`` as it may be printed: credentials masked, control characters (newlines, terminal
    escape sequences) shown as ``\\xNN``, cut to ``limit`` characters."""
    text = printable(redact_start(text, 4 * limit))  # masking scans the text: its work is bounded
    return text if len(text) <= limit else text[:limit - 1] + "…"


def describe_error(exc: BaseException) -> str:
    """``Type: message`` of a plugin's exception, cleaned for printing (its ``__str__`` may fail)."""
    try:
        message = str.__str__(str(exc))  # a str subclass's methods are plugin code too
        name = str.__str__(type(exc).__name__)
        return clean_text(f"{name}: {message}" if message else name, MAX_LINE)
    except Exception:
        return "an exception whose message could not be read"


class _Job:
    __slots__ = ("fn", "done", "value", "error", "message")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.fn = fn
        self.done = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.message = ""

    def run(self) -> None:
        try:
            self.value = self.fn()
        except BaseException as exc:  # SystemExit too: plugin code never ends the process
            self.error = exc
            # Described here, within the budget: the exception's own ``__str__`` is plugin code.
            self.message = describe_error(exc)
        finally:
            self.done.set()


class Worker:
    """Runs plugin calls one at a time in one daemon thread, each within a budget. After a call
    overruns, its thread is abandoned and the next call starts a fresh one."""

    def __init__(self, budget: float | None) -> None:
        self.budget = budget
        self._jobs: list[_Job] = []
        self._ready: threading.Condition | None = None

    def call(self, fn: Callable[[], object]) -> Outcome:
        """Run ``fn`` within the budget. Re-raises ``KeyboardInterrupt``."""
        job = _Job(fn)
        if self.budget is None:
            job.run()
        else:
            self._submit(job)
            if not job.done.wait(self.budget):
                self._abandon()
                return Outcome(None, done=job.done)
        if isinstance(job.error, KeyboardInterrupt):
            raise job.error
        return Outcome(job.value, job.error, job.message)

    def close(self) -> None:
        """Let the thread end (an abandoned one ends when its call returns, if ever)."""
        self._abandon()

    def _submit(self, job: _Job) -> None:
        if self._ready is None:
            self._ready, self._jobs = threading.Condition(), []
            threading.Thread(target=_serve, args=(self._ready, self._jobs), daemon=True,
                             name="portarun-plugin").start()
        with self._ready:
            self._jobs.append(job)
            self._ready.notify()

    def _abandon(self) -> None:
        if self._ready is not None:
            with self._ready:
                self._jobs.append(_STOP)
                self._ready.notify()
            self._ready = None


_STOP = _Job(lambda: None)


def _serve(ready: threading.Condition, jobs: list[_Job]) -> None:
    while True:
        with ready:
            while not jobs:
                ready.wait()
            job = jobs.pop(0)
        if job is _STOP:
            return
        job.run()


class Guard:
    """One :class:`ProcessState` for a series of plugin calls, taken before the first: each
    check puts the process back as it was, so the same snapshot serves the next call."""

    def __init__(self, *, paths: bool) -> None:
        self.paths = paths
        self._state: ProcessState | None = None

    def run(self, worker: Worker, call: Callable[[], object]) -> tuple[Outcome, list[str]]:
        """``worker.call(call)``, and what it changed in the process (put back already)."""
        if self._state is None:
            self._state = ProcessState(paths=self.paths)
        try:
            outcome = worker.call(call)
        finally:
            changed = self._state.restore()
        return outcome, changed


class _Attribute(NamedTuple):
    """A process-wide attribute a plugin must not replace (``sys.stdout``, ``sys.excepthook``…)."""

    owner: Any
    name: str
    label: str


_ATTRIBUTES = (
    _Attribute(sys, "stdin", "sys.stdin"), _Attribute(sys, "stdout", "sys.stdout"),
    _Attribute(sys, "stderr", "sys.stderr"), _Attribute(sys, "excepthook", "sys.excepthook"),
    _Attribute(sys, "displayhook", "sys.displayhook"), _Attribute(sys, "unraisablehook", "sys.unraisablehook"),
    _Attribute(sys, "breakpointhook", "sys.breakpointhook"),
    _Attribute(threading, "excepthook", "threading.excepthook"),
    _Attribute(warnings, "showwarning", "warnings.showwarning"),
    _Attribute(warnings, "formatwarning", "warnings.formatwarning"),
    _Attribute(sys, "dont_write_bytecode", "sys.dont_write_bytecode"),
)


class _Setting(NamedTuple):
    """A process-wide setting read and written through functions; ``module`` names the module
    it belongs to when that is not always imported (then it is only checked once imported:
    a plugin that imports it to change it is caught either way, as the module is new then)."""

    label: str
    get: Callable[[], object]
    set: Callable[[Any], object]
    module: str | None = None


def _logging_state() -> object:
    import logging

    root = logging.getLogger()
    return root.level, tuple(root.handlers), logging.root.manager.disable


def _set_logging_state(state: Any) -> None:
    import logging

    root = logging.getLogger()
    root.setLevel(state[0])
    root.handlers[:] = list(state[1])
    logging.disable(state[2])


def _itimer() -> object:
    return _raw_signal().getitimer(0)  # ITIMER_REAL, whose expiry sends SIGALRM: by default fatal


def _set_itimer(value: Any) -> None:
    _raw_signal().setitimer(0, *value)


def _gc_state() -> object:
    import gc

    return gc.isenabled(), gc.get_threshold()


def _set_gc_state(state: Any) -> None:
    import gc

    (gc.enable if state[0] else gc.disable)()
    gc.set_threshold(*state[1])


def _module(name: str) -> Any:
    return sys.modules[name]


_SETTINGS = (
    _Setting("the garbage collector", _gc_state, _set_gc_state),
    _Setting("the thread switch interval", sys.getswitchinterval, sys.setswitchinterval),
    _Setting("the trace function", sys.gettrace, sys.settrace),
    _Setting("the profile function", sys.getprofile, sys.setprofile),
    _Setting("the real-time interval timer (SIGALRM)", _itimer, _set_itimer),
    _Setting("the root logger", _logging_state, _set_logging_state, "logging"),
    _Setting("the default socket timeout", lambda: _module("socket").getdefaulttimeout(),
             lambda value: _module("socket").setdefaulttimeout(value), "socket"),
)


class ProcessState:
    """What plugin code must leave as it found it: ``os.environ``, the working folder, signal
    handlers, the warnings filters, modules already imported, standard streams and hooks, the
    builtins and the recursion limit; with ``paths``, ``sys.path`` and ``sys.meta_path`` too (a
    plugin's import may extend those legitimately, as ``six`` or a namespace package does; its
    ``detect()`` may not).

    Changes by any thread during the call count: the guard cannot tell who made them."""

    def __init__(self, *, paths: bool) -> None:
        self._environ = _environ()
        try:
            self._cwd: str | None = os.getcwd()
        except OSError:  # the working folder was removed: nothing to restore
            self._cwd = None
        self._filters = cast("list[Any]", warnings.filters)  # typeshed says Sequence; it is the list
        self._filter_items = list(warnings.filters)
        self._modules = dict(sys.modules)
        self._attributes = [getattr(a.owner, a.name) for a in _ATTRIBUTES]
        self._builtins = dict(vars(builtins))
        self._recursion = sys.getrecursionlimit()
        self._paths: list[tuple[str, list[Any], list[Any]]] = [
            (name, getattr(sys, name), list(getattr(sys, name))) for name in ("path", "meta_path")] if paths else []
        self._signals = _signal_handlers()
        self._settings = [(setting, setting.get() if setting.module is None or setting.module in sys.modules
                           else _MISSING) for setting in _SETTINGS]

    def restore(self) -> list[str]:
        """Put back whatever changed; returns what that was (names only, never values)."""
        changed: list[str] = []
        environ = _restore_environ(self._environ)
        if environ:
            shown = ", ".join(sorted(environ)[:5]) + (", …" if len(environ) > 5 else "")
            changed.append(f"os.environ ({shown})")
        if self._cwd is not None and _cwd() != self._cwd:
            try:
                os.chdir(self._cwd)
            except OSError:
                pass
            changed.append("the working folder")
        if warnings.filters is not self._filters or list(warnings.filters) != self._filter_items:
            warnings.filters = self._filters
            warnings.resetwarnings()  # invalidates the caches of warnings already shown
            self._filters[:] = self._filter_items
            changed.append("the warnings filters")
        # The C-level comparison first (module objects compare by identity): the per-name scan
        # costs ~0.2 µs a module, and a training process has thousands.
        replaced = [] if self._modules.items() <= sys.modules.items() else [
            name for name, module in self._modules.items() if sys.modules.get(name) is not module]
        if replaced:
            sys.modules.update({name: self._modules[name] for name in replaced})
            changed.append(f"sys.modules ({', '.join(sorted(replaced)[:5])})")
        # An import may create modules its own way; detect() and the other hooks may not.
        planted = [name for name in sys.modules.keys() - self._modules.keys()
                   if _planted(sys.modules[name])] if self._paths else []
        if planted:
            for name in planted:
                del sys.modules[name]
            changed.append(f"sys.modules (planted {', '.join(sorted(planted)[:5])})")
        for attribute, value in zip(_ATTRIBUTES, self._attributes):
            if getattr(attribute.owner, attribute.name) is not value:
                setattr(attribute.owner, attribute.name, value)
                changed.append(attribute.label)
        if vars(builtins) != self._builtins and _restore_dict(vars(builtins), self._builtins):
            changed.append("builtins")
        if sys.getrecursionlimit() != self._recursion:
            sys.setrecursionlimit(self._recursion)
            changed.append("the recursion limit")
        for name, current, items in self._paths:
            if getattr(sys, name) is not current or current != items:
                setattr(sys, name, current)
                current[:] = items
                changed.append(f"sys.{name}")
        changed += _restore_signals(self._signals)
        for setting, value in self._settings:
            if value is _MISSING or setting.get() == value:
                continue
            try:
                setting.set(value)
            except (OSError, ValueError, TypeError):
                pass
            changed.append(setting.label)
        return changed


def _planted(module: object) -> bool:
    """Whether a new ``sys.modules`` entry was put there by hand rather than imported: the import
    system gives every module it creates a ``__spec__`` (read from the module's own ``__dict__``,
    so no code of a planted object runs)."""
    if not isinstance(module, ModuleType):
        return True
    namespace = object.__getattribute__(module, "__dict__")
    return not isinstance(namespace, dict) or namespace.get("__spec__") is None


def _cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _environ() -> dict[Any, Any]:
    """A copy of the environment as ``os.environ`` stores it (bytes on POSIX): copying that is
    ten times cheaper than decoding every variable, and compares just as well."""
    return dict(getattr(os.environ, "_data", None) or os.environ)


def _restore_environ(saved: dict[Any, Any]) -> list[str]:
    now = _environ()
    if now == saved:
        return []
    names = [k for k in now.keys() | saved.keys() if now.get(k) != saved.get(k)]
    decode = getattr(os.environ, "decodekey", str)
    shown = []
    for key in names:
        name = decode(key)
        if key in saved:
            os.environ[name] = getattr(os.environ, "decodevalue", str)(saved[key])
        else:
            del os.environ[name]
        shown.append(name)
    return shown


_MISSING = object()


def _restore_dict(current: dict[str, Any], saved: dict[str, Any]) -> bool:
    changed = False
    for name in list(current):
        if name not in saved and name != "_":  # ``_`` is the REPL's last result
            del current[name]
            changed = True
    for name, value in saved.items():
        if current.get(name, _MISSING) is not value:
            current[name] = value
            changed = True
    return changed


def _raw_signal() -> Any:
    import importlib

    return importlib.import_module("_signal")  # built in; has no type stubs


def _signal_handlers() -> dict[int, Any] | None:
    """Python-level handlers of every signal, when this is the main thread (only it can set
    them). Read through ``_signal``, the C module under ``signal``: the public wrappers turn
    every number and handler into an enum, which made this 30 times slower (~230 µs a call)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    _signal = _raw_signal()
    handlers = {}
    for number in _signal.valid_signals():
        try:
            handlers[int(number)] = _signal.getsignal(number)
        except (OSError, ValueError):
            pass
    return handlers


def _restore_signals(saved: dict[int, Any] | None) -> list[str]:
    if saved is None:
        return []
    import signal

    _signal = _raw_signal()
    changed = []
    for number, handler in saved.items():
        if handler is None or _signal.getsignal(number) is handler:
            continue
        try:
            signal.signal(number, handler)
        except (OSError, ValueError):
            pass
        try:
            changed.append(f"the {signal.Signals(number).name} handler")
        except ValueError:  # a real-time signal has no name
            changed.append(f"the handler of signal {number}")
    return changed
