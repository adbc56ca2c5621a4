"""Kaggle Notebooks (interactive editor sessions, committed "Save & Run All" batch runs, the
TPU VM image).

Markers (sources in docs/reference/host-evidence.md §2):

- ``KAGGLE_KERNEL_RUN_TYPE`` = ``Interactive`` | ``Batch``: injected at run time into every
  kernel (used for detection by kagglehub ``env.py`` @f81f26f2 and wandb ``util.py``).
- ``KAGGLE_URL_BASE``, ``KAGGLE_DOCKER_IMAGE``, ``KAGGLE_CONTAINER_NAME``: run-time variables
  (Kaggle/docker-python ``patches/kaggle_web_client.py`` @2654e761; observed 2026 dumps). The
  docker image itself sets no ``KAGGLE_*`` variable (HOSTS.md), so Kaggle's image run on a
  laptop has none of these.
- ``kaggle_secrets`` / ``kaggle_web_client``: modules Kaggle's image adds (``Dockerfile.tmpl``
  @b4fdbdad) — also importable when that image runs on a laptop, so weak alone.
- ``/kaggle/working`` (output, capped at 20 GB [K1][K5]) and ``/kaggle/input``: ``/kaggle/input``
  is weak because kagglehub mounts its Colab cache there and Colab VMs carry an empty ``/kaggle``.
- ``ISTPUVM=1``: ENV of the TPU VM image only (``tpu/Dockerfile`` @5c805377).
- ``KAGGLE_USERNAME`` / ``KAGGLE_KEY`` / ``KAGGLE_API_TOKEN``: API credentials on laptops and CI.
  Never evidence (accelerate's "any KAGGLE* variable" rule gets this wrong).

Session: 12 h CPU/GPU, 9 h TPU per session (Kaggle notebook docs, 2nd-hand, HOSTS.md [K1]).
"""
from __future__ import annotations

from datetime import timedelta

import pluggy

from ..probe import Probe
from ..provider import Detection, Evidence, HostLocations, Provider, SessionLimits
from ..registry import Register

hookimpl = pluggy.HookimplMarker("portarun")

_RUNTIME_VARS = ("KAGGLE_URL_BASE", "KAGGLE_DOCKER_IMAGE", "KAGGLE_CONTAINER_NAME")
_CREDENTIAL_VARS = ("KAGGLE_USERNAME", "KAGGLE_KEY", "KAGGLE_API_TOKEN")


class KaggleProvider(Provider):
    """Kaggle Notebooks, CPU, GPU and TPU, interactive and batch."""

    name = "kaggle"
    display_name = "Kaggle"
    priority = 10  # Kaggle's image is Colab's plus more: on a tie, the more specific host wins.
    marker_modules = ("kaggle_secrets", "kaggle_web_client")

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        run_type = probe.getenv("KAGGLE_KERNEL_RUN_TYPE")
        if run_type in ("Interactive", "Batch"):
            ev.add(0.4, "env " + probe.env_fact("KAGGLE_KERNEL_RUN_TYPE"), "Kaggle injects it into every kernel")
        elif run_type:
            ev.add(0.1, "env " + probe.env_fact("KAGGLE_KERNEL_RUN_TYPE"), "unexpected value; Kaggle sets Interactive or Batch")
        runtime_vars = [v for v in _RUNTIME_VARS if probe.getenv(v)]
        if runtime_vars:
            ev.add(0.15, "env " + ", ".join(runtime_vars), "set by Kaggle at run time, not by its image")
        if probe.is_dir("/kaggle/working"):
            ev.add(0.15, "folder /kaggle/working", "Kaggle's output folder")
        modules = [m for m in cls.marker_modules if probe.has_module(m)]
        if modules:
            ev.add(0.15, "module " + ", ".join(modules) + " importable", "added by Kaggle's docker image")
        if probe.is_dir("/kaggle/input"):
            ev.add(0.05, "folder /kaggle/input", "weak: kagglehub mounts its Colab cache there too")
        if probe.getenv("ISTPUVM") == "1":
            ev.add(0.05, "env ISTPUVM=1", "set by Kaggle's TPU VM image")
        for var in _CREDENTIAL_VARS:
            if probe.getenv(var):
                ev.note(f"env {var} set", "API credential, present on laptops and CI; not evidence")
        return ev.detection()

    def is_tpu_vm(self) -> bool:
        """Whether this is Kaggle's TPU VM image (``ISTPUVM=1``) or TPU chips are attached."""
        return self.probe.getenv("ISTPUVM") == "1" or self.probe.tpu is not None

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        # /kaggle/temp: "won't be saved outside of the current session" (Kaggle's notebook
        # boilerplate); it is outside the 20 GB /kaggle/working cap. /tmp where it is absent.
        scratch = p("/kaggle/temp") if self.probe.is_dir("/kaggle/temp") else p("/tmp") / "portarun-scratch"
        return HostLocations(
            input=p("/kaggle/input"), scratch=scratch, output=p("/kaggle/working"),
            # /kaggle/working is saved with a committed version (and with the Persistence setting).
            persist=p("/kaggle/working"), cache=self.probe.home / ".cache",
        )

    def session_limits(self) -> SessionLimits:
        if self.is_tpu_vm():
            return SessionLimits(timedelta(hours=9), "Kaggle notebooks: 9 hours per TPU session")
        return SessionLimits(timedelta(hours=12), "Kaggle notebooks: 12 hours per CPU/GPU session")


@hookimpl
def portarun_register_providers(register: Register) -> None:
    register(KaggleProvider)
