"""Plugins registered in-process (portarun.testing.plugin): ranking, overriding hooks, and
misbehaving plugins isolated. Installed distributions are covered by test_plugin_distributions."""
from __future__ import annotations

import builtins
import datetime
import gc
import io
import itertools
import logging
import os
import re
import signal
import socket
import sys
import textwrap
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterator

import pytest

import portarun
import portarun.provider
from portarun import Detection, HostLocations, Provider, hookimpl
from portarun.errors import PluginError
from portarun.paths import Paths
from portarun.testing import plugin, simulate


def _provider(name: str, confidence: float | None, priority: int = 0, raises: bool = False,
              returns: object = None) -> type[Provider]:
    class P(Provider):
        display_name = name.title()

        @classmethod
        def detect(cls, probe):  # type: ignore[no-untyped-def]
            if raises:
                raise RuntimeError("boom")
            if returns is not None:
                return returns
            return None if confidence is None else Detection(confidence, (f"+{confidence:.2f} test",))

        def locations(self, project: str) -> HostLocations:
            base = self.probe.path("/" + name)
            return HostLocations(base / "in", base / "scratch", base / "out", base / "persist", base / "cache")

    P.name = name
    P.priority = priority
    return P


def _plugin_of(*classes: type[Provider]) -> types.SimpleNamespace:
    @hookimpl
    def portarun_register_providers(register):  # type: ignore[no-untyped-def]
        for cls in classes:
            register(cls)

    return types.SimpleNamespace(portarun_register_providers=portarun_register_providers)


def test_third_party_provider_wins_by_confidence() -> None:
    with plugin(_plugin_of(_provider("acme", 0.95))):
        assert "acme" in portarun.providers()
        # A matched Kaggle session (0.55) that a more confident third-party provider outranks.
        with simulate(env={"KAGGLE_KERNEL_RUN_TYPE": "Interactive"}, paths=["/kaggle/working"]) as rt:
            assert rt.host.name == "acme"
            assert rt.paths.output == rt.probe.path("/acme/out")
    assert "acme" not in portarun.providers()  # unregistered on exit


def test_ties_break_by_priority_then_name() -> None:
    with plugin(_plugin_of(_provider("zeta", 0.7, priority=5), _provider("alpha", 0.7, priority=5),
                           _provider("beta", 0.7))):
        with simulate(env={}) as rt:
            assert [v.provider for v in rt.verdicts[:3]] == ["alpha", "zeta", "beta"]


def test_low_confidence_never_wins() -> None:
    with plugin(_plugin_of(_provider("meh", 0.3))):
        with simulate(env={}) as rt:
            assert rt.host.name == "local"
            assert "below threshold" in rt.explain()


@pytest.mark.parametrize("kwargs, message", [
    ({"raises": True}, r"provider 'bad' .* raised in detect\(\): RuntimeError: boom; it was skipped"),
    ({"returns": 0.9}, r"provider 'bad' .* returned float from detect\(\), not a portarun.Detection"),
])
def test_misbehaving_detect_is_skipped_with_a_warning(kwargs, message) -> None:
    with plugin(_plugin_of(_provider("bad", 0.9, **kwargs))):
        with pytest.warns(portarun.PortarunWarning, match=message):
            with simulate("kaggle") as rt:
                assert rt.host.name == "kaggle"
                assert "error:" in rt.explain()


def test_strict_mode_raises() -> None:
    with plugin(_plugin_of(_provider("bad", 0.9, raises=True))):
        with pytest.raises(PluginError, match="raised in detect"):
            with simulate(env={"PORTARUN_STRICT": "1"}):
                pass


def test_registering_a_non_provider_is_reported() -> None:
    with plugin(_plugin_of(object)):  # type: ignore[arg-type]
        with pytest.warns(portarun.PortarunWarning, match="not a portarun.Provider subclass"):
            with simulate(env={}) as rt:
                assert rt.host.name == "local"


def test_duplicate_provider_name_is_reported() -> None:
    with plugin(_plugin_of(_provider("kaggle", 0.99))):
        with pytest.warns(portarun.PortarunWarning, match="second provider named 'kaggle'"):
            with simulate("kaggle") as rt:
                assert rt.host.name == "kaggle"


def test_block_list_disables_a_builtin() -> None:
    with simulate("paperspace", env={"PORTARUN_DISABLE_PLUGINS": "paperspace"}) as rt:
        assert rt.host.name == "local"
        assert "paperspace" not in [v.provider for v in rt.verdicts]


def test_paths_hook_overrides_the_builtin_and_wrappers_see_the_result() -> None:
    seen: list[Paths] = []

    class Hooks:
        @hookimpl(wrapper=True)
        def portarun_resolve_paths(self, provider, project):  # type: ignore[no-untyped-def]
            result = yield
            seen.append(result)
            return result

    with plugin(Hooks()):
        with simulate("kaggle") as rt:
            assert seen == [rt.paths]


def test_a_providers_cpu_hint_reaches_report_and_loader() -> None:
    """One place applies the host's CPU count (RunPod's RUNPOD_CPU_COUNT, say): rt.cpu."""
    from portarun._cli import report

    pod = _provider("pod", 0.9)
    pod.cpu_hint = lambda self: 1  # type: ignore[method-assign]
    with plugin(_plugin_of(pod)):
        with simulate(env={}, cpus=64) as rt:
            assert rt.cpu.hint == 1 and rt.cpu.usable == 1 and rt.probe.cpu.usable == 64
            assert report.system_section(rt)["cpus"]["usable"] == 1
            assert rt.loader.facts.cpus == 1


# -- plugins that misbehave: hang, exit, hand over malformed classes or detections, or change
#    the process around them. Each is skipped with a warning naming it; detection carries on.

def _detecting(name: str, detect) -> type[Provider]:  # type: ignore[no-untyped-def]
    """A provider whose detect() is ``detect(probe)``."""
    cls = _provider(name, None)
    cls.detect = classmethod(lambda c, probe: detect(probe))  # type: ignore[method-assign,assignment]
    return cls


def test_a_hanging_detect_is_abandoned_after_its_budget() -> None:
    release = threading.Event()
    timer = threading.Timer(8, release.set)  # lets the old, unbounded code finish (and fail)
    timer.start()
    try:
        with plugin(_plugin_of(_detecting("sleepy", lambda probe: release.wait(60)))):
            started = time.monotonic()
            with pytest.warns(portarun.PortarunWarning,
                              match=r"provider 'sleepy' .* detect\(\) did not return within 0.2 s "
                                    r".*PORTARUN_PLUGIN_TIMEOUT"):
                with simulate("kaggle", env={"PORTARUN_PLUGIN_TIMEOUT": "0.2"}) as rt:
                    assert rt.host.name == "kaggle"
                    sleepy = next(v.error for v in rt.verdicts if v.provider == "sleepy")
                    assert "did not return within 0.2 s" in str(sleepy)
            assert time.monotonic() - started < 3
            # Still hung: the next detection skips it at once instead of starting another thread.
            with pytest.warns(portarun.PortarunWarning, match="'sleepy' .* still running"):
                with simulate("kaggle", env={"PORTARUN_PLUGIN_TIMEOUT": "0.2"}) as rt:
                    assert rt.host.name == "kaggle"
    finally:
        release.set()
        timer.cancel()


def test_the_budget_variable_is_checked() -> None:
    with plugin(_plugin_of(_provider("acme", 0.9))):
        with pytest.warns(portarun.PortarunWarning, match="PORTARUN_PLUGIN_TIMEOUT='soon' is not a number of seconds"):
            with simulate(env={"PORTARUN_PLUGIN_TIMEOUT": "soon"}) as rt:
                assert rt.host.name == "acme"
        for value in ("off", "1e300", "2.5s"):  # off: no limit, plugin code runs inline
            with simulate(env={"PORTARUN_PLUGIN_TIMEOUT": value}) as rt:
                assert rt.host.name == "acme"


class _NotAnError(BaseException):
    pass


@pytest.mark.parametrize("exc", [SystemExit(3), _NotAnError("odd"), GeneratorExit()])
def test_base_exceptions_in_detect_do_not_end_the_process(exc: BaseException) -> None:
    def detect(probe):  # type: ignore[no-untyped-def]
        raise exc

    with plugin(_plugin_of(_detecting("quitter", detect))):
        with pytest.warns(portarun.PortarunWarning, match=f"'quitter' .* raised in detect\\(\\): {type(exc).__name__}"):
            with simulate("kaggle") as rt:
                assert rt.host.name == "kaggle"


def test_keyboard_interrupt_in_detect_still_propagates() -> None:
    def detect(probe):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt

    with plugin(_plugin_of(_detecting("ctrl-c", detect))):
        with pytest.raises(KeyboardInterrupt):
            with simulate("kaggle"):
                pass


def _abstract() -> type:
    class Abstract(Provider):  # no locations()
        name = "abstract"
        display_name = "Abstract"

        @classmethod
        def detect(cls, probe):  # type: ignore[no-untyped-def]
            return Detection(0.99, ("+0.99 claims everything",))

    return Abstract


def _with(**attributes: object) -> type:
    cls = _provider("claimer", 0.99)
    for key, value in attributes.items():
        if value is _DELETE:
            delattr(cls, key)
        else:
            setattr(cls, key, value)
    return cls


_DELETE = object()


@pytest.mark.parametrize("cls, problem", [
    (_abstract(), r"is abstract \(it does not implement locations\)"),
    (_with(display_name=_DELETE), "no valid `display_name`"),
    (_with(display_name="two\nlines"), "no valid `display_name`"),
    (_with(name=5), "no valid `name` .got 5"),
    (_with(name="has space"), "no valid `name`"),
    (_with(name=""), "no valid `name`"),
    (_with(priority="high"), "`priority` that is not an int"),
    (_with(fallback="yes"), "`fallback` that is not a bool"),
    (_with(marker_modules="google.colab"), "`marker_modules` that is not a tuple"),
])
def test_malformed_provider_classes_are_refused_at_registration(cls: type, problem: str) -> None:
    with plugin(_plugin_of(cls)):  # type: ignore[arg-type]
        with pytest.warns(portarun.PortarunWarning,
                          match=f"registered .*, which (has a |has |is )?{problem}.*; it was skipped"):
            with simulate("kaggle") as rt:
                assert rt.host.name == "kaggle"
                assert all(v.error is None for v in rt.verdicts)  # refused before detection


@pytest.mark.parametrize("detection, problem", [
    (Detection("0.99", ("x",)), "confidence of type str"),  # type: ignore[arg-type]
    (Detection(float("nan"), ("x",)), "confidence nan, outside"),
    (Detection(float("inf"), ("x",)), "confidence inf, outside"),
    (Detection(-0.5, ("x",)), "confidence -0.5, outside"),
    (Detection(1.5, ("x",)), "confidence 1.5, outside"),
    (Detection(True, ("x",)), "confidence of type bool"),
    (Detection(0.99, "evidence"), "evidence that is not a tuple of strings"),  # type: ignore[arg-type]
    (Detection(0.99, (1, 2)), "evidence that is not a tuple of strings"),  # type: ignore[arg-type]
    ((0.99, ("x",)), "returned tuple"),
])
def test_malformed_detections_are_refused_at_ranking(detection: object, problem: str) -> None:
    with plugin(_plugin_of(_detecting("claimer", lambda probe: detection))):
        with pytest.warns(portarun.PortarunWarning, match=f"'claimer' .*{problem}.* from detect"):
            with simulate("kaggle") as rt:
                assert rt.host.name == "kaggle"
                assert [v.provider for v in rt.verdicts][-1] == "claimer"
                rt.explain()


def test_evidence_is_cleaned_before_anything_prints_it() -> None:
    lines = ("+0.99 \x1b[2J\x1b[31mred\nsecond line\r", "note token=s3://AKIAXX:hunter2@bucket/x",
             "+0.00 " + "y" * 100_000, *(f"note {i}" for i in range(200)))
    with plugin(_plugin_of(_detecting("noisy", lambda probe: Detection(0.99, lines)))):
        with simulate(env={}) as rt:
            assert rt.host.name == "noisy"
            text = rt.explain()
    assert "\x1b" not in text and "\r" not in text and "red\nsecond" not in text and "\\x1b[2J" in text
    assert "hunter2" not in text
    assert max(len(line) for line in rt.host.evidence) <= 500
    assert len(rt.host.evidence) <= 51 and "more evidence lines not shown" in rt.host.evidence[-1]


def test_a_trylast_plugin_cannot_replace_a_builtin_provider() -> None:
    impostor = _provider("kaggle", 0.99)

    class Hooks:
        @hookimpl(trylast=True)
        def portarun_register_providers(self, register):  # type: ignore[no-untyped-def]
            register(impostor)

    hooks = Hooks()
    with plugin(hooks, name="impostor"):
        with pytest.warns(portarun.PortarunWarning) as caught:
            with simulate("kaggle") as rt:
                assert portarun.providers()["kaggle"] is not impostor
                assert rt.host.plugin == "kaggle" and rt.paths.output == rt.probe.path("/kaggle/working")
    message = next(str(w.message) for w in caught if "second provider named 'kaggle'" in str(w.message))
    assert message.startswith("portarun plugin 'impostor' registered")  # the impostor is blamed
    assert "keeps the built-in one" in message


def test_providers_see_a_read_only_environment() -> None:
    def vandal(probe):  # type: ignore[no-untyped-def]
        probe.env.clear()  # in a simulation this was the probe's own dict
        return None

    # "aaa" is asked before "kaggle": were the environment shared, Kaggle would go undetected.
    with plugin(_plugin_of(_detecting("aaa", vandal))):
        with pytest.warns(portarun.PortarunWarning, match="'aaa' .* raised in detect"):
            with simulate("kaggle") as rt:
                assert rt.host.name == "kaggle"
                assert rt.probe.env["KAGGLE_KERNEL_RUN_TYPE"] == "Interactive"


def _change_process(tmp: str) -> dict[str, Callable[[], object]]:
    return {
        "os.environ (PORTARUN_TEST_PLANTED)": lambda: os.environ.__setitem__("PORTARUN_TEST_PLANTED", "1"),
        "the working folder": lambda: os.chdir(tmp),
        "the warnings filters": lambda: warnings.simplefilter("ignore"),
        "sys.modules (json)": lambda: sys.modules.__setitem__("json", types.ModuleType("json")),
        "sys.modules (planted portarun_planted_torch)":
            lambda: sys.modules.__setitem__("portarun_planted_torch", types.ModuleType("torch")),
        "sys.path": lambda: sys.path.insert(0, tmp),
        "sys.stdout": lambda: setattr(sys, "stdout", io.StringIO()),
        "builtins": lambda: setattr(builtins, "open", print),
        "the recursion limit": lambda: sys.setrecursionlimit(50_000),
        "the garbage collector": gc.disable,
        "the root logger": lambda: logging.disable(logging.CRITICAL),
        "the real-time interval timer (SIGALRM)": lambda: signal.setitimer(signal.ITIMER_REAL, 1000),
        "the default socket timeout": lambda: socket.setdefaulttimeout(0.001),
    }


@pytest.mark.parametrize("what", list(_change_process("/")))
def test_a_detect_that_changes_the_process_is_undone_and_reported(what: str, tmp_path) -> None:
    before = (dict(os.environ), os.getcwd(), list(warnings.filters), sys.modules["json"], list(sys.path), sys.stdout,
              builtins.open, sys.getrecursionlimit(), "portarun_planted_torch" in sys.modules, gc.isenabled(),
              logging.root.manager.disable, signal.getitimer(signal.ITIMER_REAL), socket.getdefaulttimeout())
    change = _change_process(str(tmp_path))[what]

    def detect(probe):  # type: ignore[no-untyped-def]
        change()
        return Detection(0.99, ("+0.99 here",))

    with plugin(_plugin_of(_detecting("meddler", detect))):
        with pytest.warns(portarun.PortarunWarning,
                          match=re.escape(f"changed the process in 'meddler'.detect(): {what}")):
            with simulate("kaggle") as rt:
                assert rt.host.name == "kaggle"  # its detection does not count
    after = (dict(os.environ), os.getcwd(), list(warnings.filters), sys.modules["json"], list(sys.path), sys.stdout,
             builtins.open, sys.getrecursionlimit(), "portarun_planted_torch" in sys.modules, gc.isenabled(),
             logging.root.manager.disable, signal.getitimer(signal.ITIMER_REAL), socket.getdefaulttimeout())
    assert after == before


# -- plugins loaded from entry points: their import runs third-party code too --------------

_modules = itertools.count()


@pytest.fixture
def entry_point(tmp_path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], str]]:
    """Install a plugin module with the given source under the entry point ``ep-test`` of a
    distribution ``ep-test-dist 1.0``; returns the module's name."""
    from portarun._plugins import manager as _manager
    from portarun._plugins.entrypoints import EntryPoint
    from portarun._plugins.state import STATE

    def install(source: str) -> str:
        module = f"portarun_test_plugin_{next(_modules)}"  # a fresh name: sys.modules keeps the last
        (tmp_path / f"{module}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(tmp_path))
        monkeypatch.setattr(_manager, "portarun_entry_points",
                            lambda env: [EntryPoint("ep-test", module, "ep-test-dist", "1.0")])
        STATE.reset()
        return module

    yield install
    monkeypatch.undo()
    STATE.reset()


_PROVIDER_SOURCE = """
    import portarun
    from portarun import Detection, HostLocations, Provider

    class Acme(Provider):
        name = "acme"
        display_name = "Acme"

        @classmethod
        def detect(cls, probe):
            return Detection(0.9, ("+0.90 always",))

        def locations(self, project):
            base = self.probe.path("/acme")
            return HostLocations(base, base, base, base, base)

    @portarun.hookimpl
    def portarun_register_providers(register):
        register(Acme)
"""


def test_system_exit_while_importing_a_plugin_is_caught(entry_point) -> None:
    entry_point("raise SystemExit('bye')\n")
    with pytest.warns(portarun.PortarunWarning,
                      match=r"'ep-test' \(ep-test-dist 1.0\) failed to load .*SystemExit: bye"):
        with simulate("kaggle") as rt:
            assert rt.host.name == "kaggle"


def test_a_plugin_import_that_hangs_is_abandoned(entry_point) -> None:
    entry_point("import time\ntime.sleep(6)\n")
    started = time.monotonic()
    with pytest.warns(portarun.PortarunWarning,
                      match=r"'ep-test' \(ep-test-dist 1.0\) failed to load .*did not return within 0.3 s"):
        with simulate("kaggle", env={"PORTARUN_PLUGIN_TIMEOUT": "0.3"}) as rt:
            assert rt.host.name == "kaggle"
    assert time.monotonic() - started < 3


@pytest.mark.parametrize("timeout", ["5", "off"])
def test_a_plugin_import_that_changes_the_process_is_undone_and_reported(entry_point, tmp_path, timeout) -> None:
    """With a time budget the import runs in a worker thread, where Python refuses to set signal
    handlers; with none (``off``) it runs in the main thread, and the handler is put back."""
    import signal

    before = (dict(os.environ), os.getcwd(), list(warnings.filters), signal.getsignal(signal.SIGTERM))
    entry_point(f"""
        import os, signal, threading, warnings
        os.environ["PORTARUN_TEST_PLANTED"] = "1"
        os.chdir({str(tmp_path)!r})
        warnings.simplefilter("ignore")
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
        {textwrap.indent(textwrap.dedent(_PROVIDER_SOURCE), " " * 8).strip()}
    """)
    with pytest.warns(portarun.PortarunWarning) as caught:
        with simulate(env={"PORTARUN_PLUGIN_TIMEOUT": timeout}) as rt:
            assert rt.host.name == "acme"  # the plugin still loads: what it changed is put back
    message = next(str(w.message) for w in caught if "changed the process while loading" in str(w.message))
    for what in ("os.environ (PORTARUN_TEST_PLANTED)", "the working folder", "the warnings filters"):
        assert what in message
    assert ("the SIGTERM handler" in message) == (timeout == "off")
    assert (dict(os.environ), os.getcwd(), list(warnings.filters), signal.getsignal(signal.SIGTERM)) == before


def test_a_plugin_may_extend_sys_path_while_it_loads(entry_point, tmp_path) -> None:
    """Importing may legitimately add to sys.path (namespace packages, vendored code)."""
    vendored = str(tmp_path / "vendored")
    entry_point(f"import sys\nsys.path.append({vendored!r})\n" + textwrap.dedent(_PROVIDER_SOURCE))
    try:
        with simulate(env={}) as rt:
            assert rt.host.name == "acme"
    finally:
        sys.path.remove(vendored)


@pytest.mark.parametrize("body, problem", [
    ("raise SystemExit(2)", "SystemExit: 2"),
    ("import time; time.sleep(6)", "did not return within 0.3 s"),
    ("return 'not paths'", "it returned str, not a portarun.paths.Paths or None"),
    ("import os; os.environ['PORTARUN_TEST_PLANTED'] = '1'",
     "it changed the process: os.environ (PORTARUN_TEST_PLANTED)"),
])
def test_a_failing_paths_hook_falls_back_to_portaruns_own_paths(entry_point, body: str, problem: str) -> None:
    """``detect()`` calls the ``portarun_resolve_paths`` hooks too: a plugin's broken one must
    not break it either."""
    before = dict(os.environ)
    entry_point(f"""
        import portarun

        @portarun.hookimpl
        def portarun_resolve_paths(provider, project):
            {body}
    """)
    with pytest.warns(portarun.PortarunWarning,
                      match=rf"'ep-test' \(ep-test-dist 1.0\) failed in portarun_resolve_paths: "
                            rf".*{re.escape(problem)}"):
        with simulate("kaggle", env={"PORTARUN_PLUGIN_TIMEOUT": "0.3"}) as rt:
            assert rt.paths.output == rt.probe.path("/kaggle/working")
    assert dict(os.environ) == before


def test_a_working_paths_hook_from_an_entry_point_still_decides(entry_point) -> None:
    entry_point("""
        import portarun
        from portarun.paths import resolve

        @portarun.hookimpl
        def portarun_resolve_paths(provider, project):
            return resolve(provider, project + "-mine")
    """)
    with simulate("kaggle", project="exp") as rt:
        assert rt.paths.checkpoints.parent.name == "exp-mine"


class _Hostile(float):
    """A float (as numpy.float64 is one) whose comparisons and conversions are plugin code."""

    def __ge__(self, other: object) -> bool:
        raise RuntimeError("compared")

    __le__ = __lt__ = __gt__ = __ge__  # type: ignore[assignment]

    def __float__(self) -> float:
        raise RuntimeError("converted")


class _HostileStr(str):
    def translate(self, table: object) -> str:  # type: ignore[override]
        raise RuntimeError("translated")

    def __str__(self) -> str:
        raise RuntimeError("printed")


class _HostileError(Exception):
    def __str__(self) -> str:
        while True:  # as a message built from a hung resource would
            time.sleep(0.05)


def test_subclasses_cannot_smuggle_plugin_code_past_the_checks() -> None:
    """Values that pass isinstance() but run plugin code when used are converted to plain
    float/str inside the plugin's time budget; portarun never calls their methods afterwards."""
    detection = Detection(_Hostile(0.97), (_HostileStr("+0.97 hostile \x1b[2J"),))
    with plugin(_plugin_of(_detecting("hostile", lambda probe: detection))):
        with simulate(env={}) as rt:
            assert rt.host.name == "hostile" and rt.host.confidence == 0.97
            assert type(rt.host.evidence[0]) is str and "\\x1b[2J" in rt.explain()


def test_an_exception_whose_message_hangs_is_given_up_on() -> None:
    def detect(probe):  # type: ignore[no-untyped-def]
        raise _HostileError

    with plugin(_plugin_of(_detecting("mute", detect))):
        started = time.monotonic()
        with pytest.warns(portarun.PortarunWarning, match="'mute' .* did not return within 0.3 s"):
            with simulate("kaggle", env={"PORTARUN_PLUGIN_TIMEOUT": "0.3"}) as rt:
                assert rt.host.name == "kaggle"
        assert time.monotonic() - started < 3


def _winner_with(method: str, behaviour: Callable[..., object]) -> type[Provider]:
    cls = _provider("winner", 0.99)
    setattr(cls, method, lambda self, *args: behaviour())
    return cls


def _hang() -> None:
    time.sleep(6)


def _exit() -> None:
    raise SystemExit(1)


@pytest.mark.parametrize("method, behaviour, problem", [
    ("locations", _exit, "SystemExit: 1"),
    ("locations", lambda: None, "its locations() returned NoneType, not a portarun.HostLocations"),
    ("locations", lambda: HostLocations(1, 2, 3, 4, 5), "its locations().input is int, not a path or URL"),
    ("locations", _hang, "did not return within 0.3 s"),
    ("session_limits", lambda: portarun.provider.SessionLimits(datetime.timedelta(hours=-1), "x"),
     "its session_limits() is not a SessionLimits with a positive timedelta or None"),
    ("session_start", lambda: float("nan"), "its session_start() returned nan, not a Unix time"),
    ("cpu_hint", lambda: "4", "its cpu_hint() returned '4', not a CPU count or None"),
])
def test_a_provider_that_matches_but_cannot_answer_is_skipped(method: str, behaviour, problem: str) -> None:
    """What detect() asks the winner is asked of a matching third-party provider first, within
    its budget: one that cannot answer loses instead of breaking detect()."""
    with plugin(_plugin_of(_winner_with(method, behaviour))):
        with pytest.warns(portarun.PortarunWarning, match=rf"'winner' .* matched, but .*{re.escape(problem)}"):
            with simulate("kaggle", env={"PORTARUN_PLUGIN_TIMEOUT": "0.3"}) as rt:
                assert rt.host.name == "kaggle"
                rt.session, rt.cpu  # noqa: B018  (the winner's answers are all usable)


# -- hooks that portarun does not know ------------------------------------------------------

# The provider module above with its hook name one letter short: pluggy would never call it.
_MISSPELLED = _PROVIDER_SOURCE.replace("def portarun_register_providers(", "def portarun_register_provider(")


def test_a_misspelled_hook_is_reported_with_the_hook_it_meant(entry_point) -> None:
    entry_point(_MISSPELLED)
    with pytest.warns(portarun.PortarunWarning) as caught:
        with simulate("kaggle") as rt:
            assert rt.host.name == "kaggle"  # Acme was never registered
    message = next(str(w.message) for w in caught if "not a portarun hook" in str(w.message))
    assert message.startswith("portarun plugin 'ep-test' (ep-test-dist 1.0) implements 'portarun_register_provider'")
    assert "(did you mean 'portarun_register_providers'?)" in message
    for hook in ("portarun_register_providers", "portarun_resolve_paths", "portarun_submit"):
        assert hook in message.split("The hooks are: ")[1]


def test_a_misspelled_hook_is_an_error_in_strict_mode(entry_point) -> None:
    entry_point(_MISSPELLED)
    with pytest.raises(PluginError, match=r"'ep-test' \(ep-test-dist 1.0\) implements 'portarun_register_provider'"):
        with simulate("kaggle", env={"PORTARUN_STRICT": "1"}):
            pass


def test_an_optional_unknown_hook_is_left_alone(recwarn: pytest.WarningsRecorder) -> None:
    """pluggy's ``optionalhook=True`` says: a hook of another version or project; not an error."""
    @hookimpl(optionalhook=True)
    def portarun_future_hook() -> None:
        """A hook a later portarun may specify."""

    with plugin(types.SimpleNamespace(portarun_future_hook=portarun_future_hook)):
        with simulate("kaggle", env={"PORTARUN_STRICT": "1"}) as rt:
            assert rt.host.name == "kaggle"
    assert not [w for w in recwarn if "not a portarun hook" in str(w.message)]


def test_every_hook_is_documented_with_its_parameters_and_result() -> None:
    import inspect

    from portarun import hookspecs

    hooks = [f for name, f in vars(hookspecs).items() if name.startswith("portarun_")]
    assert len(hooks) >= 5
    for hook in hooks:
        doc = inspect.getdoc(hook) or ""
        for parameter in inspect.signature(hook).parameters:
            assert f":param {parameter}:" in doc, (hook.__name__, parameter)
        assert ":return:" in doc, hook.__name__
    assert portarun.hookimpl is hookspecs.hookimpl


def test_one_hookimpl_marker_serves_portarun_and_every_plugin_package() -> None:
    """Markers are created in portarun.hookspecs only; the built-in hosts and the plugin packages
    (written as outside authors would) import that one."""
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    sources = [*(repo / "portarun").rglob("*.py"), *(repo / "plugins").glob("*/portarun_*/*.py")]
    assert len(sources) > 40
    makers = sorted(str(path.relative_to(repo)) for path in sources if "HookimplMarker(" in path.read_text("utf-8"))
    assert makers == ["portarun/hookspecs.py"]


def test_a_plugin_whose_hook_lacks_the_mark_is_reported(entry_point) -> None:
    """pluggy ignores a function without the mark: the plugin would load and do nothing."""
    entry_point(_MISSPELLED.replace("@portarun.hookimpl\n    def portarun_register_provider(",
                                    "def portarun_register_providers("))
    with pytest.warns(portarun.PortarunWarning, match=r"'ep-test' \(ep-test-dist 1.0\) implements no portarun hook "
                                                      r"\(portarun_register_providers without the @portarun.hookimpl "
                                                      r"mark\), so it does nothing"):
        with simulate("kaggle") as rt:
            assert rt.host.name == "kaggle"
