"""Lightning AI Studios: cloud machines with a persistent ``/teamspace/studios/this_studio``.

Markers, weighed because the Lightning SDK puts ``LIGHTNING_*`` variables on laptops too:

- ``LIGHTNING_CLOUDSPACE_HOST``: the Studio's public host name; ``lightning.app`` treats its
  presence as "running in a cloudspace" (``constants.LIGHTNING_CLOUDSPACE_HOST is not None`` in
  its multiprocess runtime), and people build ``https://<port>-$LIGHTNING_CLOUDSPACE_HOST`` URLs.
- ``LIGHTNING_CLOUD_URL`` **together with** ``LIGHTNING_CLOUDSPACE_HOST``: zenml's Studio rule
  (zenml-io/zenml ``src/zenml/environment.py`` @46538c61). ``LIGHTNING_CLOUD_URL`` alone is an SDK
  setting that can point a laptop at a deployment: not counted.
- ``LIGHTNING_CLOUD_SPACE_ID``: the Studio's id; lightning_sdk's CLI refuses ``lightning login``
  "within a Studio" based on it, and litdata's S3 client switches to the Studio's credentials.
- ``/teamspace/studios/this_studio``: the Studio's persistent folder (HOSTS.md [L1]; a public
  Studio tutorial: "``/teamspace/studios/this_studio/`` as your home dir. Files saved here stay
  between sessions").
- ``LIGHTNING_CLOUD_PROJECT_ID``: also set on laptops that use the SDK (HOSTS.md). Never evidence.
- ``LIGHTNING_USER_ID`` / ``LIGHTNING_API_KEY``: SDK credentials (the SDK's examples export them
  on laptops). Never evidence.

Paths: ``/teamspace/datasets`` holds the teamspace's datasets when mounted (litdata treats
``/teamspace/datasets/`` and ``/teamspace/s3_connections/`` as Studio mounts). Session: Lightning
publishes no Studio session limit (HOSTS.md [L1]: "No official Studio limits were found"); idle
Studios go to sleep (a public stop-the-Studio script: "does not wait for idle auto-sleep").
"""
from __future__ import annotations

from collections.abc import Callable

import pluggy
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Provider, SessionLimits

hookimpl = pluggy.HookimplMarker("portarun")

STUDIO_DIR = "/teamspace/studios/this_studio"
DATASETS_DIR = "/teamspace/datasets"
_SDK_VARS = ("LIGHTNING_CLOUD_PROJECT_ID", "LIGHTNING_USER_ID", "LIGHTNING_API_KEY")


class LightningStudioProvider(Provider):
    """A Lightning AI Studio (CPU or GPU machine)."""

    name = "lightning"
    display_name = "Lightning AI Studio"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        cloudspace_host = probe.getenv("LIGHTNING_CLOUDSPACE_HOST")
        if cloudspace_host:
            ev.add(0.3, "env " + probe.env_fact("LIGHTNING_CLOUDSPACE_HOST"), "the Studio's own host name")
            if probe.getenv("LIGHTNING_CLOUD_URL"):
                ev.add(0.1, "env LIGHTNING_CLOUD_URL with LIGHTNING_CLOUDSPACE_HOST", "zenml's Lightning Studio rule")
        elif probe.getenv("LIGHTNING_CLOUD_URL"):
            ev.note("env LIGHTNING_CLOUD_URL alone", "an SDK setting, also on laptops; not counted")
        if probe.getenv("LIGHTNING_CLOUD_SPACE_ID"):
            ev.add(0.2, "env LIGHTNING_CLOUD_SPACE_ID", "the Studio's id; the SDK uses it to know it runs in a Studio")
        if probe.is_dir(STUDIO_DIR):
            ev.add(0.3, f"folder {STUDIO_DIR}", "the Studio's persistent folder")
        sdk_vars = [v for v in _SDK_VARS if probe.getenv(v)]
        if sdk_vars:
            ev.note("env " + ", ".join(sdk_vars) + " set", "set by the Lightning SDK on laptops too; not evidence")
        return ev.detection()

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        studio = p(STUDIO_DIR)
        return HostLocations(
            input=p(DATASETS_DIR) if self.probe.is_dir(DATASETS_DIR) else studio,
            scratch=p("/tmp") / "portarun-scratch",
            output=studio / "portarun" / project / "outputs",
            persist=studio / "portarun",
            cache=studio / ".cache",
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(None, "Lightning AI publishes no Studio session limit; idle Studios are put to sleep")


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(LightningStudioProvider)
