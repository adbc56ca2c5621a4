"""Lightning AI Studios: cloud machines with a persistent ``/teamspace/studios/this_studio``.

Evidence, weighed as docs/hosts.md says: what the Studio injects into its session outweighs
what an image or the Lightning SDK carries, independent markers add up, credentials never count,
and the Studio folder alone stays weak.

Session variables (set by the Studio for its own session):

- ``LIGHTNING_CLOUD_SPACE_ID`` (0.50): the Studio's id. Lightning's own code treats it alone as
  "inside a Studio": lightning_sdk's ``lightning login`` refuses with "Unable to login within a
  Studio" on it (lightning_sdk CLI test ``test_cannot_login_within_studio``,
  github-file-id:55324870800), and litdata's S3 client switches to the machine's instance
  credentials on it alone (``lightning.data`` ``S3Client``, github-file-id:2422882418), which
  would break both tools on a laptop that exported it. A vendor's own "in a Studio" rule.
- ``LIGHTNING_CLOUDSPACE_HOST`` (0.40): the Studio's public host name; lightning.app reads it
  alone as "running in a cloudspace" (``in_cloudspace = constants.LIGHTNING_CLOUDSPACE_HOST is
  not None`` in its multiprocess runtime, github-file-id:119163639).
- ``LIGHTNING_CLOUDSPACE_EXPOSED_PORT_COUNT`` (0.20): how many ports the Studio exposes;
  lightning.app's constants read it next to the host (github-file-id:199175275) and its
  cloudspace test sets exactly these two (github-file-id:2682435726).
- ``LIGHTNING_CLOUD_URL`` **with** ``LIGHTNING_CLOUDSPACE_HOST`` (+0.10): zenml's Studio rule
  (zenml-io/zenml@46538c6134044bad3fa2ddbae786920d33887eb6:src/zenml/environment.py,
  ``in_lightning_ai_studio``). ``LIGHTNING_CLOUD_URL`` alone is an SDK setting: not counted.

The Studio's layout:

- folder ``/teamspace/studios/this_studio`` (0.30): the Studio's persistent folder (HOSTS.md
  [L1]). Weak alone: Dockerfiles use it as their ``WORKDIR`` for images built to run elsewhere
  (``WORKDIR /teamspace/studios/this_studio/vto_run_clothes``, github-file-id:22452465362).
- ``HOME`` = that folder (0.20): a Studio is "a persistent Linux environment with
  /teamspace/studios/this_studio/ as your home dir" (a public Studio tutorial,
  github-file-id:71589270465); an image's ``WORKDIR`` does not move ``HOME``.
- folder ``/home/zeus/miniconda3/envs/cloudspace`` (0.20): the Studio image's Python
  environment, which Studio scripts and Lightning's own DNS helper call by absolute path
  (``sudo /home/zeus/miniconda3/envs/cloudspace/bin/python`` in ``lightning.data``,
  github-file-id:2923793143; github-file-id:62308439007). An image marker: weak alone.

Never evidence: ``LIGHTNING_USER_ID`` / ``LIGHTNING_API_KEY`` (SDK credentials, exported on
laptops and CI, github-file-id:61627480909), ``LIGHTNING_CLOUD_PROJECT_ID`` and
``LIGHTNING_CLUSTER_ID`` (litdata's ``_IS_IN_STUDIO`` pair,
Lightning-AI/litdata@224f8704392d7b36f62a8b1c5509095ba9514125:src/litdata/constants.py, but SDK
settings a laptop carries too: HOSTS.md, github-file-id:71378569274).

Paths: ``/teamspace/datasets`` holds the teamspace's datasets when mounted (litdata treats
``/teamspace/datasets/`` and ``/teamspace/s3_connections/`` as Studio mounts). Session: Lightning
publishes no Studio session limit (HOSTS.md [L1]: "No official Studio limits were found"); idle
Studios go to sleep (a public stop-the-Studio script: "does not wait for idle auto-sleep").
"""
from __future__ import annotations

from collections.abc import Callable

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Provider, SessionLimits

STUDIO_DIR = "/teamspace/studios/this_studio"
DATASETS_DIR = "/teamspace/datasets"
STUDIO_PYTHON_ENV = "/home/zeus/miniconda3/envs/cloudspace"
_NOT_EVIDENCE = ("LIGHTNING_CLOUD_PROJECT_ID", "LIGHTNING_CLUSTER_ID", "LIGHTNING_USER_ID", "LIGHTNING_API_KEY")


class LightningStudioProvider(Provider):
    """A Lightning AI Studio (CPU or GPU machine)."""

    name = "lightning"
    display_name = "Lightning AI Studio"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        cls._session_variables(probe, ev)
        if probe.is_dir(STUDIO_DIR):
            ev.add(0.3, f"folder {STUDIO_DIR}", "the Studio's persistent folder; also an image WORKDIR elsewhere")
        if (probe.getenv("HOME") or "").rstrip("/") == STUDIO_DIR:
            ev.add(0.2, f"env HOME={STUDIO_DIR}", "a Studio makes its persistent folder the home")
        if probe.is_dir(STUDIO_PYTHON_ENV):
            ev.add(0.2, f"folder {STUDIO_PYTHON_ENV}", "the Studio image's Python environment")
        sdk_vars = [v for v in _NOT_EVIDENCE if probe.getenv(v)]
        if sdk_vars:
            ev.note("env " + ", ".join(sdk_vars) + " set",
                    "Lightning SDK settings and credentials, on laptops too; not evidence")
        return ev.detection()

    @staticmethod
    def _session_variables(probe: Probe, ev: Evidence) -> None:
        """The variables a Studio sets for its own session (weights and sources: module doc)."""
        if probe.getenv("LIGHTNING_CLOUD_SPACE_ID"):
            ev.add(0.5, "env " + probe.env_fact("LIGHTNING_CLOUD_SPACE_ID"),
                   "the Studio's id; Lightning's SDK treats it as in-a-Studio")
        else:
            ev.missing("env LIGHTNING_CLOUD_SPACE_ID")
        if probe.getenv("LIGHTNING_CLOUDSPACE_HOST"):
            ev.add(0.4, "env " + probe.env_fact("LIGHTNING_CLOUDSPACE_HOST"), "the Studio's own host name")
            if probe.getenv("LIGHTNING_CLOUD_URL"):
                ev.add(0.1, "env LIGHTNING_CLOUD_URL with LIGHTNING_CLOUDSPACE_HOST", "zenml's Lightning Studio rule")
        else:
            ev.missing("env LIGHTNING_CLOUDSPACE_HOST")
            if probe.getenv("LIGHTNING_CLOUD_URL"):
                ev.note("env LIGHTNING_CLOUD_URL alone", "an SDK setting, also on laptops; not counted")
        if probe.getenv("LIGHTNING_CLOUDSPACE_EXPOSED_PORT_COUNT"):
            ev.add(0.2, "env " + probe.env_fact("LIGHTNING_CLOUDSPACE_EXPOSED_PORT_COUNT"),
                   "the ports the Studio exposes")

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
