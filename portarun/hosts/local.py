"""The fallback provider: a laptop, a workstation, a rented GPU box, a cluster node.

It always matches with the lowest confidence, so it wins only when no hosted platform does.
Paths follow the platform's conventions through platformdirs, and the project folder
(the working folder) for inputs and outputs.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ..hookspecs import Register, hookimpl
from ..probe import Probe
from ..provider import Detection, HostLocations, Preset, Provider


class LocalProvider(Provider):
    """This machine, whatever it is, when no hosted platform matched."""

    name = "local"
    display_name = "Local machine"
    priority = -1000
    fallback = True

    @classmethod
    def detect(cls, probe: Probe) -> Detection:
        return Detection(0.05, ("+0.05 fallback (chosen when no hosted platform matches)",))

    def _user_dir(self, real: Path) -> Path:
        """A platformdirs folder, moved under the simulated home in a simulation."""
        if not self.probe.simulated:
            return real
        try:
            return self.probe.home / real.relative_to(Path.home())
        except ValueError:
            return self.probe.home / real.name

    def locations(self, project: str) -> HostLocations:
        import platformdirs

        try:
            cache = self._user_dir(platformdirs.user_cache_path("portarun", appauthor=False))
            persist = self._user_dir(platformdirs.user_data_path("portarun", appauthor=False))
        except RuntimeError:  # what platformdirs and pathlib raise when they find no home folder
            self.probe.home  # a PathError saying HOME is missing and what to set, if so
            raise  # there is a home: the error is another one
        return HostLocations(
            input=self.probe.cwd / "data",
            scratch=cache / "scratch",
            output=self.probe.cwd / "outputs",
            persist=persist,
            cache=cache,
        )

    @classmethod
    def presets(cls) -> Mapping[str, Preset]:
        # A laptop's shell: a home folder and nothing else, outside any notebook kernel.
        return {"local": Preset(env={"HOME": "/home/user"}, kernel=False)}


@hookimpl
def portarun_register_providers(register: Register) -> None:
    register(LocalProvider)
