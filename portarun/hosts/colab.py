"""Google Colab.

Markers, weighed because they lie (sources in docs/reference/host-evidence.md §1):

- ``/var/colab/hostname``: hosted Colab VMs; ``google.colab.drive`` refuses to mount without it
  (googlecolab/colabtools ``google/colab/drive.py`` @94300b75). Not reported on Kaggle. Strong.
- ``COLAB_JUPYTER_IP`` / ``COLAB_KERNEL_MANAGER_PROXY_HOST``: per-session kernel plumbing seen in
  a Colab ``!env`` dump (2025-09, HOSTS.md [C5]); inherited by ``!python`` children.
- ``COLAB_RELEASE_TAG``: Colab runtime image tag, **also set in Kaggle's image** (built on
  Colab's; Kaggle/kagglehub PR #230). Weak.
- ``VERTEX_PRODUCT=COLAB_ENTERPRISE``: Colab Enterprise (huggingface_hub
  ``utils/_runtime.py`` @02ecd7b9 ``is_colab_enterprise``).
- ``google.colab`` importable: reported importable on Kaggle too. Weak.
- ``/content``: Colab's working folder, but RunPod images use ``WORKDIR /content`` (HOSTS.md). Weak.
- An empty ``/kaggle`` exists on Colab VMs and kagglehub mounts its cache at ``/kaggle/input``
  there: the Kaggle provider does not count those alone.

Session: "at most 12 hours" for free notebooks (Colab FAQ, HOSTS.md [C1]); idle timeout unpublished.
"""
from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pluggy

from ..probe import Probe
from ..provider import Detection, DeviceKind, Evidence, HostLocations, Provider, SessionLimits
from ..registry import Register

hookimpl = pluggy.HookimplMarker("portarun")

DRIVE_MOUNT = "/content/drive"
# "MyDrive" since 2020; older mounts show "My Drive" (HOSTS.md [F1]).
DRIVE_ROOTS = ("/content/drive/MyDrive", "/content/drive/My Drive")


class ColabProvider(Provider):
    """Google Colab (free, Pro, and Colab Enterprise runtimes)."""

    name = "colab"
    display_name = "Google Colab"
    marker_modules = ("google.colab",)

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        if probe.is_file("/var/colab/hostname"):
            ev.add(0.45, "file /var/colab/hostname", "present on hosted Colab VMs; Drive mounting requires it")
        session_vars = [v for v in ("COLAB_JUPYTER_IP", "COLAB_KERNEL_MANAGER_PROXY_HOST") if probe.getenv(v)]
        if session_vars:
            ev.add(0.15, "env " + ", ".join(probe.env_fact(v) for v in session_vars), "Colab kernel plumbing")
        if probe.getenv("COLAB_RELEASE_TAG"):
            ev.add(0.15, "env " + probe.env_fact("COLAB_RELEASE_TAG"), "Colab image tag; also set on Kaggle's Colab-based image")
        if probe.getenv("VERTEX_PRODUCT") == "COLAB_ENTERPRISE":
            ev.add(0.4, "env VERTEX_PRODUCT=COLAB_ENTERPRISE", "Colab Enterprise runtime")
        if probe.has_module("google.colab"):
            ev.add(0.1, "module google.colab importable", "Colab's own package; also present on Kaggle")
        if probe.is_dir("/content"):
            ev.add(0.1, "folder /content", "Colab's working folder; other images use it too")
        if probe.getenv("COLAB_GPU") == "":
            ev.note("env COLAB_GPU is empty", "set empty on CPU runtimes: its presence proves nothing")
        return ev.detection()

    def drive(self) -> Path | None:
        """The root of the mounted Google Drive, or ``None`` when it is not mounted."""
        for root in DRIVE_ROOTS:
            if self.probe.is_dir(root):
                return self.probe.path(root)
        return None

    def locations(self, project: str) -> HostLocations:
        content = self.probe.path("/content")
        drive = self.drive()
        if drive is not None:
            return HostLocations(
                input=content, scratch=content, output=drive / "portarun" / project / "outputs",
                persist=drive / "portarun", cache=self.probe.home / ".cache",
            )
        return HostLocations(
            input=content, scratch=content, output=content / "outputs",
            persist=content / "portarun", cache=self.probe.home / ".cache",
            persist_warning=(
                "Google Drive is not mounted, so portarun's persist and checkpoints folders are on the "
                "Colab VM's disk under /content/portarun and will be deleted when the session ends. "
                "Mount Drive first with `rt = rt.mount_drive()` (or `from google.colab import drive; "
                "drive.mount('/content/drive')`), or set PORTARUN_PERSIST_DIR to a bucket URL."
            ),
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(timedelta(hours=12), "Colab FAQ: free notebooks run at most 12 hours")

    def device_order(self) -> tuple[DeviceKind, ...]:
        return ("cuda", "xla", "cpu")


@hookimpl
def portarun_register_providers(register: Register) -> None:
    register(ColabProvider)
