"""Broken on purpose: a provider whose ``detect()`` raises instead of returning ``None``."""
from __future__ import annotations

from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, HostLocations, Provider


class DetectRaisesProvider(Provider):
    """Raises from ``detect()`` on every machine."""

    name = "example-broken-detect"
    display_name = "Example: detect() raises"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        raise RuntimeError("example-broken-detect fails on purpose")

    def locations(self, project: str) -> HostLocations:
        root = self.probe.path("/tmp") / "example-broken-detect"
        return HostLocations(input=root, scratch=root, output=root, persist=root, cache=root)


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(DetectRaisesProvider)
