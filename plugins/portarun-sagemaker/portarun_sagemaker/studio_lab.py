"""Amazon SageMaker Studio Lab: free JupyterLab projects with a persistent home.

Markers (Studio Lab sets no vendor variable that we could find):

- ``HOME=/home/studio-lab-user`` and ``USER=studio-lab-user``: the project's only user; an env
  note kept by a Studio Lab user (Azathothas toolpacks setup script, citing
  aws/studio-lab-examples issue #118) lists both, with root, apt and su disabled.
- ``/home/studio-lab-user`` folder: the persistent project storage, 15 GB (HOSTS.md [S2]).
- ``/home/studio-lab-user/.conda/envs/studiolab`` (older images) or ``.../envs/default``: the
  project's conda environment (same note; segsmaker/sd-hub scripts use ``envs/default/lib``).

Paths: everything under the home persists between sessions ("Everything about your project is
automatically saved", Studio Lab's getting-started notebook), so persist, outputs and caches
live there; mind the 15 GB. Session: 4 hours on GPU, 12 hours on CPU (aws/studio-lab-examples
issue #192, HOSTS.md [S1]).
"""
from __future__ import annotations

from datetime import timedelta

from portarun.probe import Probe
from portarun.provider import Detection, DeviceKind, Evidence, HostLocations, Provider, SessionLimits

HOME = "/home/studio-lab-user"
USER = "studio-lab-user"
CONDA_ENVS = ("studiolab", "default")


class StudioLabProvider(Provider):
    """A SageMaker Studio Lab project runtime (CPU or GPU)."""

    name = "sagemaker-studiolab"
    display_name = "Amazon SageMaker Studio Lab"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        if probe.getenv("HOME") == HOME:
            ev.add(0.3, f"env HOME={HOME}", "the Studio Lab project's home")
        if probe.getenv("USER") == USER:
            ev.add(0.1, f"env USER={USER}", "the Studio Lab project's only user")
        if probe.is_dir(HOME):
            ev.add(0.1, f"folder {HOME}", "Studio Lab's persistent storage")
        envs = [e for e in CONDA_ENVS if probe.is_dir(f"{HOME}/.conda/envs/{e}")]
        if envs:
            ev.add(0.2, f"conda env {HOME}/.conda/envs/{envs[0]}", "the environment Studio Lab creates for a project")
        return ev.detection()

    def locations(self, project: str) -> HostLocations:
        home = self.probe.path(HOME)
        return HostLocations(
            input=home, scratch=self.probe.path("/tmp") / "portarun-scratch",
            output=home / "portarun" / project / "outputs", persist=home / "portarun", cache=home / ".cache",
        )

    def session_limits(self) -> SessionLimits:
        if self.probe.gpus:
            return SessionLimits(timedelta(hours=4), "SageMaker Studio Lab: 4 hours per GPU session")
        return SessionLimits(timedelta(hours=12), "SageMaker Studio Lab: 12 hours per CPU session")

    def device_order(self) -> tuple[DeviceKind, ...]:
        return ("cuda", "cpu")
