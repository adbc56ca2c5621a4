"""Every registered provider — built-in or installed from a plugin distribution — passes the
same checks. ``tox -e plugins`` runs this file with the plugin packages under plugins/ installed.
"""
from __future__ import annotations

import pytest

import portarun
from portarun.errors import PortarunWarning
from portarun.paths import ROLES, is_remote
from portarun.provider import Detection, HostLocations, Provider, SessionLimits
from portarun.testing import simulate

PROVIDERS = sorted(portarun.providers())


@pytest.fixture(params=PROVIDERS)
def provider_cls(request: pytest.FixtureRequest) -> type[Provider]:
    return portarun.providers()[request.param]


def test_class_attributes(provider_cls: type[Provider]) -> None:
    assert isinstance(provider_cls.name, str) and provider_cls.name == provider_cls.name.strip().lower()
    assert isinstance(provider_cls.display_name, str) and provider_cls.display_name
    assert isinstance(provider_cls.priority, int)
    assert all(isinstance(m, str) for m in provider_cls.marker_modules)


def test_detect_on_an_empty_machine_is_not_a_match(provider_cls: type[Provider]) -> None:
    """Nothing in the environment, no folders: only the fallback may claim the machine."""
    with simulate(env={}) as rt:
        detection = provider_cls.detect(rt.probe)
        assert detection is None or isinstance(detection, Detection)
        if not provider_cls.fallback:
            assert detection is None or detection.confidence < 0.5, detection
        assert rt.host.name == "local"


def test_detection_is_well_formed_and_deterministic(provider_cls: type[Provider]) -> None:
    with simulate("kaggle") as rt:
        first, second = provider_cls.detect(rt.probe), provider_cls.detect(rt.probe)
        assert first == second
        if first is not None:
            assert 0.0 <= first.confidence <= 0.99
            assert all(isinstance(line, str) and line for line in first.evidence)


def test_forced_provider_gives_usable_paths(provider_cls: type[Provider], tmp_path) -> None:
    """Forced onto a bare simulated machine, a provider still hands out paths (with a warning
    that they belong to another platform): local ones live under the simulation root, and
    none is created until something writes there."""
    root = tmp_path / "root"
    with pytest.warns(PortarunWarning) if not provider_cls.fallback else _nullcontext():
        with simulate(env={"PORTARUN_HOST": provider_cls.name}, root=root) as rt:
            assert rt.host.name == provider_cls.name and rt.host.forced
            locations = provider_cls(rt.probe).locations(rt.project)
            assert isinstance(locations, HostLocations)
            for role in ROLES:
                value = rt.paths[role]
                if is_remote(value):
                    continue
                assert root in value.parents, (role, value)
                assert not value.exists() or value == root, (role, value)


def test_session_limits_and_device_order(provider_cls: type[Provider]) -> None:
    with simulate(env={}) as rt:
        provider = provider_cls(rt.probe)
        limits = provider.session_limits()
        assert isinstance(limits, SessionLimits) and limits.source
        assert limits.limit is None or limits.limit.total_seconds() > 0
        order = provider.device_order()
        assert order and set(order) <= {"cuda", "xla", "mps", "cpu"} and order[-1] == "cpu"


class _nullcontext:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None
