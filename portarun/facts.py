"""Plain records of hardware and system facts, as read by the probe or given by a simulation.

Each record is a frozen dataclass with no behaviour beyond derived values, so a test can build
one by hand and a simulation can hand one to the probe (see :mod:`portarun.testing`).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CpuFacts:
    """CPU counts as seen from this process.

    ``logical`` is ``os.cpu_count()`` (the whole host, also inside a container); ``affinity`` is
    ``len(os.sched_getaffinity(0))`` where the platform has it; ``quota`` is the cgroup CPU
    bandwidth limit in CPUs (``cpu.max`` / ``cfs_quota_us÷cfs_period_us``), ``None`` when
    unlimited; ``hint`` is a host-provided count (e.g. ``RUNPOD_CPU_COUNT``), ``None`` if none.
    """

    logical: int
    affinity: int
    quota: float | None = None
    hint: int | None = None

    @property
    def usable(self) -> int:
        """The number of CPUs work can really run on: the smallest of all known limits, ≥ 1."""
        limits: list[float] = [self.logical, self.affinity]
        if self.quota is not None:
            limits.append(self.quota)
        if self.hint is not None:
            limits.append(self.hint)
        return max(1, int(min(limits)))


@dataclass(frozen=True)
class MemoryFacts:
    """Memory in bytes: the machine's ``total``, what is ``available`` now, and the cgroup
    ``limit`` (``None`` when unlimited)."""

    total: int
    available: int
    limit: int | None = None

    @property
    def usable(self) -> int:
        """Bytes this process can really use: the smaller of the cgroup limit and the total."""
        return min(self.total, self.limit) if self.limit is not None else self.total


@dataclass(frozen=True)
class ShmFacts:
    """Size and free space of the shared-memory filesystem (``/dev/shm``) in bytes; ``None``
    where it does not exist (macOS, Windows)."""

    path: str
    total: int | None
    free: int | None


@dataclass(frozen=True)
class GpuFacts:
    """One NVIDIA GPU visible to this process, as found without initialising CUDA."""

    index: int
    name: str
    uuid: str | None = None
    memory: int | None = None
    compute_capability: tuple[int, int] | None = None
    source: str = "unknown"


@dataclass(frozen=True)
class TpuFacts:
    """TPU chips attached to this host, found by a PCI scan (never by importing torch_xla)."""

    chips: int
    generation: str | None = None
    accelerator_type: str | None = None
    source: str = "unknown"


@dataclass(frozen=True)
class PlatformFacts:
    """``platform.system()`` and ``platform.machine()``; MPS needs ``Darwin`` on ``arm64``."""

    system: str
    machine: str
