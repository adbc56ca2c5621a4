"""Broken on purpose: a provider whose ``detect()`` calls ``sys.exit()``, which raises
``SystemExit``; uncaught, it would end the user's process in the middle of ``detect()``."""
from __future__ import annotations

import sys
from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, HostLocations, Provider


class ExitsProvider(Provider):
    """Exits from ``detect()`` on every machine."""

    name = "example-broken-exit"
    display_name = "Example: detect() calls sys.exit()"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        sys.exit("example-broken-exit exits on purpose")

    def locations(self, project: str) -> HostLocations:
        root = self.probe.path("/tmp") / "example-broken-exit"
        return HostLocations(input=root, scratch=root, output=root, persist=root, cache=root)


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(ExitsProvider)
