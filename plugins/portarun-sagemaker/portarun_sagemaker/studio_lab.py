"""Amazon SageMaker Studio Lab: free JupyterLab projects with a persistent home.

Markers, weighed so that the session's files count as much as its variables (a child process or
a terminal may lack ``SAGEMAKER_INTERNAL_IMAGE_URI``, never the home it runs in):

- ``/home/studio-lab-user`` folder: the project's persistent storage, 15 GB (HOSTS.md [S2]);
  no other platform we know uses that user. +0.20.
- ``HOME=/home/studio-lab-user`` (+0.20) and ``USER=studio-lab-user`` (+0.10): the project's
  only user; an env note kept by a Studio Lab user (Azathothas toolpacks setup script, citing
  aws/studio-lab-examples issue #118) lists both, with root, apt and su disabled.
- conda environments under ``/home/studio-lab-user/.conda/envs`` (``studiolab`` on older images,
  ``default`` on newer ones; the same note's PATH, and gutris1/segsmaker@607b29d2
  ``script/SM/default.py``): Studio Lab keeps a project's environments in its home so that
  they persist. +0.20.
- ``SAGEMAKER_INTERNAL_IMAGE_URI``: set by the image Studio Lab runs (gutris1/segsmaker@607b29d2
  ``script/marking.py`` takes it as the Studio Lab flag, ``SSL``; its ``nenen88`` ``tempe``
  pairs it with ``/home/studio-lab-user``). SageMaker *Studio* spaces set it too (AWS's IDE
  toolkit checks it in ``hasSageMakerEnvVars``, code index file 44479135107), so it counts
  (+0.20) only with the Studio Lab home present; alone it is a note.

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
CONDA_DIR = f"{HOME}/.conda/envs"
CONDA_ENVS = ("studiolab", "default")


class StudioLabProvider(Provider):
    """A SageMaker Studio Lab project runtime (CPU or GPU)."""

    name = "sagemaker-studiolab"
    display_name = "Amazon SageMaker Studio Lab"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        home = probe.is_dir(HOME)
        if home:
            ev.add(0.2, f"folder {HOME}", "Studio Lab's persistent project storage")
        else:
            ev.missing(f"folder {HOME}, the Studio Lab project's persistent home")
        if probe.getenv("HOME") == HOME:
            ev.add(0.2, f"env HOME={HOME}", "the Studio Lab project's home")
        if probe.getenv("USER") == USER:
            ev.add(0.1, f"env USER={USER}", "the Studio Lab project's only user")
        envs = [e for e in CONDA_ENVS if probe.is_dir(f"{CONDA_DIR}/{e}")]
        if envs or probe.is_dir(CONDA_DIR):
            where = f"{CONDA_DIR}/{envs[0]}" if envs else CONDA_DIR
            ev.add(0.2, f"conda envs {where}", "Studio Lab keeps a project's conda environments in its home")
        else:
            ev.missing(f"conda environments under {CONDA_DIR}")
        if probe.getenv("SAGEMAKER_INTERNAL_IMAGE_URI"):
            if home:
                ev.add(0.2, "env SAGEMAKER_INTERNAL_IMAGE_URI with the Studio Lab home",
                       "set by the image Studio Lab runs")
            else:
                ev.note("env SAGEMAKER_INTERNAL_IMAGE_URI without the Studio Lab home",
                        "SageMaker Studio spaces set it too; not counted alone")
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
