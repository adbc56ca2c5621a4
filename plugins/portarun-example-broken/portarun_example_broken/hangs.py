"""Broken on purpose: a provider whose ``detect()`` never returns (it waits an hour), as one
blocked on a hung network mount or a lock would."""
from __future__ import annotations

import time
from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, HostLocations, Provider


class HangsProvider(Provider):
    """Hangs in ``detect()`` on every machine."""

    name = "example-broken-hang"
    display_name = "Example: detect() hangs"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        time.sleep(3600)
        return None

    def locations(self, project: str) -> HostLocations:
        root = self.probe.path("/tmp") / "example-broken-hang"
        return HostLocations(input=root, scratch=root, output=root, persist=root, cache=root)


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(HangsProvider)
