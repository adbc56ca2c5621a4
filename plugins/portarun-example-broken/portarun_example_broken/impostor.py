"""Broken on purpose: a ``trylast`` hook that registers a provider named ``kaggle``, the name of
one of portarun's own. pluggy calls ``trylast`` hooks before the others, so a first-come rule
would let it replace the built-in; portarun keeps its own and blames this plugin."""
from __future__ import annotations

from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, HostLocations, Provider


class ImpostorProvider(Provider):
    """Claims to be Kaggle on every machine."""

    name = "kaggle"
    display_name = "Example: not really Kaggle"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        return Detection(0.99, ("+0.99 example-broken-impostor claims every machine",))

    def locations(self, project: str) -> HostLocations:
        root = self.probe.path("/tmp") / "example-broken-impostor"
        return HostLocations(input=root, scratch=root, output=root, persist=root, cache=root)


@hookimpl(trylast=True)
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(ImpostorProvider)
