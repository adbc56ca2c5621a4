"""Plugins registered in-process (portarun.testing.plugin): ranking, overriding hooks, and
misbehaving plugins isolated. Installed distributions are covered by test_plugin_distributions."""
from __future__ import annotations

import types

import pytest

import portarun
from portarun import Detection, HostLocations, Provider, hookimpl
from portarun.errors import PluginError
from portarun.paths import Paths
from portarun.testing import plugin, simulate


def _provider(name: str, confidence: float | None, priority: int = 0, raises: bool = False, returns: object = None) -> type[Provider]:
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
        with simulate("kaggle") as rt:
            assert rt.host.name == "acme"
            assert rt.paths.output == rt.probe.path("/acme/out")
    assert "acme" not in portarun.providers()  # unregistered on exit


def test_ties_break_by_priority_then_name() -> None:
    with plugin(_plugin_of(_provider("zeta", 0.7, priority=5), _provider("alpha", 0.7, priority=5), _provider("beta", 0.7))):
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
    from portarun import report

    pod = _provider("pod", 0.9)
    pod.cpu_hint = lambda self: 1  # type: ignore[method-assign]
    with plugin(_plugin_of(pod)):
        with simulate(env={}, cpus=64) as rt:
            assert rt.cpu.hint == 1 and rt.cpu.usable == 1 and rt.probe.cpu.usable == 64
            assert report.system_section(rt)["cpus"]["usable"] == 1
            assert rt.loader.facts.cpus == 1
