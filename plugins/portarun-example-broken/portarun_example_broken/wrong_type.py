"""Broken on purpose: a provider whose ``detect()`` returns a bare confidence (a float) instead
of a :class:`portarun.provider.Detection`."""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import HostLocations, Provider


class WrongTypeProvider(Provider):
    """Claims every machine with a float, which portarun must refuse."""

    name = "example-broken-type"
    display_name = "Example: detect() returns the wrong type"

    @classmethod
    def detect(cls, probe: Probe) -> Any:  # the contract says Detection | None
        return 0.99

    def locations(self, project: str) -> HostLocations:
        root = self.probe.path("/tmp") / "example-broken-type"
        return HostLocations(input=root, scratch=root, output=root, persist=root, cache=root)


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(WrongTypeProvider)
