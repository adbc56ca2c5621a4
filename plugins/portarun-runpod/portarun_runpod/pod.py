"""RunPod pods: rented GPU containers with a volume at ``/workspace``. This module is the
plugin's entry point and also registers the serverless-worker provider (``serverless.py``).

Markers (RunPod's "Pod environment variables" reference,
https://docs.runpod.io/pods/references/environment-variables):

- ``RUNPOD_POD_ID``: "The unique identifier for your pod". Strong, unless the serverless job
  webhook ``RUNPOD_WEBHOOK_GET_JOB`` is set: workers carry a ``RUNPOD_POD_ID`` too (the runpod
  SDK's ``WORKER_ID``, github-file-id:12286954681), and they are ``runpod-serverless``.
- ``RUNPOD_POD_HOSTNAME``: the host server the pod runs on.
- ``RUNPOD_DC_ID``, ``RUNPOD_PUBLIC_IP``, ``RUNPOD_TCP_PORT_22``: the pod's data centre and
  public endpoints.
- ``RUNPOD_CPU_COUNT``, ``RUNPOD_MEM_GB``, ``RUNPOD_GPU_COUNT``: the pod's own share of the host
  (one pod: ``RUNPOD_CPU_COUNT=6``, ``RUNPOD_MEM_GB=23``; HOSTS.md [R3]).
- ``/workspace``: the pod's volume mount (HOSTS.md [R1]), but also a common ``WORKDIR`` in
  Docker images. Weak.
- ``/content``: RunPod images use ``WORKDIR /content`` (HOSTS.md), which says nothing. Not counted.
- ``RUNPOD_API_KEY``: pod-scoped inside a pod, but the runpod SDK and runpodctl read the same name
  on laptops. Never evidence.

Paths: "volume disk" at ``/workspace`` survives stop/restart and is deleted with the pod; a
network volume replaces it at ``/workspace``; the container disk is lost on stop/restart
(https://docs.runpod.io/pods/storage, HOSTS.md [R1]). CPUs: ``nproc`` and ``/proc/meminfo`` show
the whole host inside a pod (HOSTS.md [R4]); ``RUNPOD_CPU_COUNT`` is the pod's share, so it is
this provider's :meth:`cpu_hint`. Session: pods bill until stopped; RunPod sets no time limit.
"""
from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from portarun.hookspecs import hookimpl
from portarun.probe import Probe
from portarun.provider import Detection, Evidence, HostLocations, Preset, Provider, SessionLimits

from .serverless import JOB_WEBHOOK, RunPodServerlessProvider

if TYPE_CHECKING:
    from portarun.monitor.budgets import Budget

WORKSPACE = "/workspace"
_PLACEMENT_VARS = ("RUNPOD_DC_ID", "RUNPOD_PUBLIC_IP", "RUNPOD_TCP_PORT_22")
_RESOURCE_VARS = ("RUNPOD_CPU_COUNT", "RUNPOD_MEM_GB", "RUNPOD_GPU_COUNT")


#: On-demand USD per GPU-hour (Secure Cloud, Community Cloud) from RunPod's pricing page, as
#: transcribed with its reading date by datareceipts/data-receipts (109-gpu-pricing/vendors.json).
#: Prices move: the monitor labels every figure an estimate and names this source and date.
GPU_PRICES: dict[str, tuple[float, float]] = {
    "H100 SXM": (3.99, 2.69), "H100 PCIe": (2.89, 1.99), "H100 NVL": (3.19, 2.59),
    "A100 PCIe 80GB": (1.79, 1.19), "A100 SXM 80GB": (1.79, 1.39),
}
PRICE_SOURCE = ("https://www.runpod.io/pricing, as transcribed in "
                "https://raw.githubusercontent.com/datareceipts/data-receipts/main/109-gpu-pricing/vendors.json")
PRICE_READ = "2026-11-09"


def gpu_price_model(name: str) -> str | None:
    """The :data:`GPU_PRICES` model of an NVML GPU name (``NVIDIA H100 80GB HBM3`` is the SXM
    part, ``NVIDIA A100-SXM4-80GB``, ``NVIDIA A100 80GB PCIe``), or ``None``."""
    upper = name.upper()
    if "H100" in upper:
        return "H100 NVL" if "NVL" in upper else "H100 PCIe" if "PCIE" in upper else "H100 SXM"
    if "A100" in upper and "80GB" in upper:
        return "A100 PCIe 80GB" if "PCIE" in upper else "A100 SXM 80GB"
    return None


@dataclass(frozen=True)
class PodResources:
    """The pod's own share of its host, from ``RUNPOD_CPU_COUNT``, ``RUNPOD_MEM_GB`` and
    ``RUNPOD_GPU_COUNT`` (``None`` where a variable is missing or not a positive number)."""

    cpus: int | None
    memory_gb: float | None
    gpus: int | None


def _positive(value: str | None) -> float | None:
    try:
        number = float(value) if value is not None else None
    except ValueError:
        return None
    return number if number is not None and number > 0 else None


class RunPodProvider(Provider):
    """A RunPod GPU or CPU pod (not a serverless worker)."""

    name = "runpod"
    display_name = "RunPod pod"

    @classmethod
    def detect(cls, probe: Probe) -> Detection | None:
        ev = Evidence()
        if probe.getenv(JOB_WEBHOOK):
            # Serverless workers get a RUNPOD_POD_ID too (the runpod SDK's WORKER_ID); the job
            # webhook is what makes one a worker (see serverless.py).
            ev.note(f"env {JOB_WEBHOOK} set", "a serverless worker's job queue: runpod-serverless, not a pod")
        elif probe.getenv("RUNPOD_POD_ID"):
            ev.add(0.4, "env " + probe.env_fact("RUNPOD_POD_ID"), "RunPod sets it in every pod")
        if probe.getenv("RUNPOD_POD_HOSTNAME"):
            ev.add(0.1, "env RUNPOD_POD_HOSTNAME", "the RunPod host the pod runs on")
        placement = [v for v in _PLACEMENT_VARS if probe.getenv(v)]
        if placement:
            ev.add(0.1, "env " + ", ".join(placement), "the pod's data centre and public endpoints")
        resources = [v for v in _RESOURCE_VARS if probe.getenv(v)]
        if resources:
            ev.add(0.1, "env " + ", ".join(probe.env_fact(v) for v in resources), "the pod's share of its host")
        if probe.is_dir(WORKSPACE):
            ev.add(0.1, f"folder {WORKSPACE}", "RunPod's volume mount, but also a common image WORKDIR")
        if probe.is_dir("/content"):
            ev.note("folder /content", "RunPod images use WORKDIR /content; not counted")
        if probe.getenv("RUNPOD_API_KEY"):
            ev.note("env RUNPOD_API_KEY set", "the runpod SDK reads it on laptops too; not evidence")
        return ev.detection()

    def resources(self) -> PodResources:
        """The pod's CPUs, memory (GB, as RunPod states it) and GPUs."""
        cpus = _positive(self.probe.getenv("RUNPOD_CPU_COUNT"))
        gpus = _positive(self.probe.getenv("RUNPOD_GPU_COUNT"))
        return PodResources(
            cpus=int(cpus) if cpus is not None else None,
            memory_gb=_positive(self.probe.getenv("RUNPOD_MEM_GB")),
            gpus=int(gpus) if gpus is not None else None,
        )

    def cpu_hint(self) -> int | None:
        return self.resources().cpus

    def locations(self, project: str) -> HostLocations:
        p = self.probe.path
        workspace = p(WORKSPACE)
        warning = None
        if self.probe.getenv("RUNPOD_POD_ID") and not self.probe.is_dir(WORKSPACE):
            warning = (
                f"This RunPod pod has no volume at {WORKSPACE}, so portarun's persist and checkpoints folders are on "
                "the container disk, which is wiped when the pod stops or restarts. Give the pod a volume disk or "
                f"a network volume (both mount at {WORKSPACE}), or set PORTARUN_PERSIST_DIR to a bucket URL."
            )
        return HostLocations(
            input=workspace, scratch=p("/tmp") / "portarun-scratch",
            output=workspace / "portarun" / project / "outputs", persist=workspace / "portarun",
            cache=workspace / ".cache", persist_warning=warning,
        )

    def session_limits(self) -> SessionLimits:
        return SessionLimits(None, "RunPod pods run, and bill, until stopped: no session limit")

    def budgets(self) -> tuple[Budget, ...]:
        """The listed on-demand price of this pod's GPUs, Secure and Community Cloud, for the
        models in :data:`GPU_PRICES`; none for other models (portarun never guesses a price)."""
        from portarun.monitor.budgets import Budget  # only when a monitor starts: detect() stays light

        gpus = self.probe.gpus
        model = gpu_price_model(gpus[0].name) if gpus else None
        if model is None:
            return ()
        count = self.resources().gpus or len(gpus)
        secure, community = GPU_PRICES[model]
        return tuple(
            Budget(f"the RunPod {cloud} Cloud list price for {count} x {model}", "price_per_hour", "gpu",
                   round(price * count, 4), "USD/h", PRICE_SOURCE, PRICE_READ)
            for cloud, price in (("Secure", secure), ("Community", community)))

    @classmethod
    def presets(cls) -> Mapping[str, Preset]:
        # A pod's environment as in RunPod's variable reference and one pod's log (HOSTS.md [R3]),
        # with its volume at /workspace.
        env = {"HOME": "/root", "PWD": WORKSPACE, "RUNPOD_POD_ID": "0rice6j5w1okh9",
               "RUNPOD_POD_HOSTNAME": "0rice6j5w1okh9-64411b", "RUNPOD_DC_ID": "EU-RO-1",
               "RUNPOD_PUBLIC_IP": "203.0.113.7", "RUNPOD_TCP_PORT_22": "22122", "RUNPOD_CPU_COUNT": "6",
               "RUNPOD_MEM_GB": "23", "RUNPOD_GPU_COUNT": "1", "RUNPOD_API_KEY": "pod-scoped-key"}
        return {"runpod": Preset(env=env, paths=(WORKSPACE,), kernel=False)}


@hookimpl
def portarun_register_providers(register: Callable[[type[Provider]], None]) -> None:
    register(RunPodProvider)
    register(RunPodServerlessProvider)
