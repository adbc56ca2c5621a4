"""What one sample reads: CPU, RAM, GPUs, ``/dev/shm``, disks per path role, session time left.

Every reader is cheap (no folder walks except a host quota's, at its own slower pace) and never
raises: a fact that cannot be read is ``None`` in the sample.

- CPU: CPU-seconds of this process and its descendants (DataLoader workers included) per second
  of wall time, from psutil, against ``rt.cpu.usable`` (cgroup quota, affinity, host hint).
- RAM: what counts towards the limit that kills the run. With a cgroup memory limit, the cgroup's
  usage less its inactive file cache (``memory.current``/``memory.usage_in_bytes`` less
  ``inactive_file``/``total_inactive_file`` of ``memory.stat``: the "working set" the kernel
  cannot simply drop, as kubelet and ``docker stats`` count it); without one, the machine's used
  memory (total less available, psutil). Under :func:`portarun.testing.simulate` the simulated
  machine is this run, so it is this process tree's resident memory. The limit is
  ``rt.probe.memory.usable`` (cgroup limit, else the machine's total).
- GPUs: NVML (``nvidia-ml-py``, as :mod:`portarun._machine.accelerators` uses it) per visible device,
  found by UUID: utilisation, memory used/total, temperature, power. A simulated host has no
  NVML: its GPUs are listed with unknown readings unless a ``gpu_reader`` is given.
- ``/dev/shm`` and each local writable path role (all but ``input``): ``statvfs`` of the nearest
  existing folder.
"""
from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._util.files import folder_bytes, nearest_folder, read_small_text
from ..paths import WRITABLE_ROLES, is_remote

if TYPE_CHECKING:
    from ..facts import GpuFacts
    from ..runtime import Runtime

#: Reads every GPU once: given the runtime's GPUs, returns one dict per device with ``index``,
#: ``name``, ``util`` (%), ``mem_used``/``mem_total`` (bytes), ``temp`` (°C), ``power`` (W).
GpuReader = Callable[[Sequence["GpuFacts"]], list[dict[str, Any]]]


def process_tree(pid: int) -> list[Any]:
    """``psutil.Process`` objects of ``pid`` and its descendants (``[]`` when it is gone). One
    call scans every process's parent (psutil reads each ``/proc/<pid>/stat``), the largest cost
    of a sample: a sample makes it once."""
    import psutil

    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


class CpuMeter:
    """CPU time of a process tree, as busy CPUs between two readings."""

    def __init__(self) -> None:
        self._seen: dict[int, float] = {}
        self._reaped = 0.0
        self._last: float | None = None

    def read(self, procs: Sequence[Any]) -> float | None:
        """Busy CPUs (1.0 = one CPU fully used) of ``procs`` (a :func:`process_tree`, root first)
        since the previous call; ``None`` on the first."""
        import psutil

        now = time.monotonic()
        total, seen, reaped = 0.0, {}, self._reaped
        for i, proc in enumerate(procs):
            try:
                t = proc.cpu_times()
            except psutil.Error:
                continue
            if i == 0:  # children that exited and were waited for moved into the root's children_* times
                reaped = t.children_user + t.children_system
            cpu = t.user + t.system
            # A process first seen now started after the last reading (or the meter's start): all its time is new.
            total += cpu - self._seen.get(proc.pid, 0.0 if self._last is not None else cpu)
            seen[proc.pid] = cpu
        total += reaped - self._reaped if self._last is not None else 0.0
        last, self._last, self._seen, self._reaped = self._last, now, seen, reaped
        if last is None or now <= last or not procs:
            return None
        return max(0.0, total / (now - last))


def _read_int(path: Path) -> int | None:
    """The first number of a cgroup file; ``None`` when missing or not a regular file (a FIFO
    planted there is refused unread)."""
    try:
        return int((read_small_text(path, 1 << 12) or "").split()[0])
    except (ValueError, IndexError):
        return None


def _stat_value(path: Path, key: str) -> int:
    try:
        for line in (read_small_text(path, 1 << 20) or "").splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except ValueError:
        pass
    return 0


def cgroup_memory_used(root: Path) -> int | None:
    """The innermost memory cgroup's usage less its inactive file cache, or ``None``."""
    from .._machine.sysinfo import cgroup_dirs

    for folder in cgroup_dirs(root, "memory"):
        current = _read_int(folder / "memory.current")
        if current is not None:
            return max(0, current - _stat_value(folder / "memory.stat", "inactive_file"))
        usage = _read_int(folder / "memory.usage_in_bytes")
        if usage is not None:
            return max(0, usage - _stat_value(folder / "memory.stat", "total_inactive_file"))
    return None


def tree_rss(procs: Sequence[Any]) -> int | None:
    """Resident memory of a :func:`process_tree` (shared pages counted in each process)."""
    import psutil

    total = 0
    for proc in procs:
        try:
            total += proc.memory_info().rss
        except psutil.Error:
            continue
    return total if procs else None


class NvmlReader:
    """GPU readings through NVML, opened once for the monitor's life. ``util`` is
    ``nvmlUtilization_t.gpu``: the percent of the driver's last sample period (1/6 s to 1 s by
    product) in which a kernel ran (https://docs.nvidia.com/deploy/nvml-api/structnvmlUtilization__t.html);
    power comes in milliwatts (``nvmlDeviceGetPowerUsage``)."""

    def __init__(self) -> None:
        import pynvml

        self._nvml = pynvml
        pynvml.nvmlInit()
        self._handles: dict[int, Any] = {}

    def _handle(self, gpu: GpuFacts) -> Any:
        nv = self._nvml
        if gpu.index not in self._handles:
            self._handles[gpu.index] = (nv.nvmlDeviceGetHandleByUUID(gpu.uuid) if gpu.uuid
                                        else nv.nvmlDeviceGetHandleByIndex(gpu.index))
        return self._handles[gpu.index]

    def __call__(self, gpus: Sequence[GpuFacts]) -> list[dict[str, Any]]:
        nv = self._nvml
        out = []
        for gpu in gpus:
            row: dict[str, Any] = {"index": gpu.index, "name": gpu.name, "util": None, "mem_used": None,
                                   "mem_total": gpu.memory, "temp": None, "power": None}
            try:
                h = self._handle(gpu)
            except nv.NVMLError:
                out.append(row)
                continue
            readers: dict[str, Callable[[], Any]] = {
                "util": lambda: nv.nvmlDeviceGetUtilizationRates(h).gpu,
                "mem_used": lambda: nv.nvmlDeviceGetMemoryInfo(h).used,
                "mem_total": lambda: nv.nvmlDeviceGetMemoryInfo(h).total,
                "temp": lambda: nv.nvmlDeviceGetTemperature(h, nv.NVML_TEMPERATURE_GPU),
                "power": lambda: nv.nvmlDeviceGetPowerUsage(h) / 1000.0,  # milliwatts
            }
            for key, read in readers.items():
                try:
                    row[key] = float(read()) if key in ("power",) else int(read())
                except nv.NVMLError:
                    pass
            out.append(row)
        return out

    def close(self) -> None:
        """Shut NVML down."""
        try:
            self._nvml.nvmlShutdown()
        except self._nvml.NVMLError:
            pass


def unknown_gpus(gpus: Sequence[GpuFacts]) -> list[dict[str, Any]]:
    """The GPUs with nothing read (no NVML here, or a simulated host)."""
    return [{"index": g.index, "name": g.name, "util": None, "mem_used": None, "mem_total": g.memory,
             "temp": None, "power": None} for g in gpus]


def disk(path: Path) -> dict[str, int] | None:
    """Free and total bytes of the disk holding ``path`` (or its nearest existing parent), and
    its device number (roles on one disk share it)."""
    folder = nearest_folder(path)
    try:
        usage = shutil.disk_usage(folder)
        dev = os.stat(folder).st_dev
    except OSError:
        return None
    return {"free": usage.free, "total": usage.total, "dev": dev}


class Sampler:
    """Reads one sample of ``rt``'s machine. ``gpu_reader`` replaces NVML (tests, other tools);
    ``quotas`` maps a host folder to ``(limit in bytes, why)``, walked every ``quota_every``
    seconds."""

    def __init__(self, rt: Runtime, *, gpu_reader: GpuReader | None = None,
                 quotas: Mapping[str, tuple[int, str]] | None = None, quota_every: float = 60.0) -> None:
        self.rt = rt
        self.pid = os.getpid()
        self.cpu = CpuMeter()
        self.gpus = rt.probe.gpus
        self._nvml: NvmlReader | None = None
        if gpu_reader is None and self.gpus and not rt.probe.simulated:
            try:
                self._nvml = NvmlReader()
            except Exception:  # no pynvml, or no driver: GPUs are listed unread
                self._nvml = None
        self.gpu_reader: GpuReader = gpu_reader or self._nvml or unknown_gpus
        self.quotas = dict(quotas or {})
        self.quota_every = quota_every
        self._quota_used: dict[str, tuple[float, int]] = {}
        # Not ``input``: read-only, and a dataset mount (Kaggle's /kaggle/input) shows as a full disk.
        self.roles = {role: Path(loc) for role in WRITABLE_ROLES if not is_remote(loc := rt.paths[role])}

    def ram(self, procs: Sequence[Any]) -> dict[str, Any]:
        """Used bytes against the limit, and where the figure comes from."""
        probe = self.rt.probe
        limit = probe.memory.usable or None
        run = tree_rss(procs)
        used: int | None = None
        if probe.simulated:
            used, source = run, "this process tree (simulated host)"
        elif probe.memory.limit is not None:
            used, source = cgroup_memory_used(probe.root), "cgroup"
        if used is None and not probe.simulated:  # no limit, or its usage file unreadable
            import psutil

            vm = psutil.virtual_memory()
            used, source = vm.total - vm.available, "machine"
        return {"used": used, "limit": limit, "run": run, "source": source}

    def shm(self) -> dict[str, int] | None:
        """``/dev/shm`` used and total bytes, or ``None`` where there is none."""
        facts = self.rt.probe.shm
        path = Path(facts.path)
        if path.is_dir():
            d = disk(path)
            if d is not None and d["total"]:
                return {"used": d["total"] - d["free"], "total": d["total"]}
        if facts.total:  # a simulated /dev/shm: only its size is known
            return {"used": facts.total - (facts.free or 0), "total": facts.total}
        return None

    def disks(self, now: float) -> dict[str, dict[str, Any]]:
        """Free space of each local role's disk, and the host quota's use where one covers it."""
        out: dict[str, dict[str, Any]] = {}
        for role, path in self.roles.items():
            d: dict[str, Any] | None = disk(path)
            if d is None:
                continue
            for folder, (limit, why) in self.quotas.items():
                root = self.rt.probe.path(folder)
                if path == root or root in path.parents:
                    d.update(quota=limit, quota_path=folder, quota_used=self._quota(folder, root, now), quota_why=why)
            out[role] = {"path": str(path), **d}
        return out

    def _quota(self, folder: str, root: Path, now: float) -> int:
        cached = self._quota_used.get(folder)
        if cached is None or now - cached[0] >= self.quota_every:
            cached = (now, folder_bytes(root))
            self._quota_used[folder] = cached
        return cached[1]

    def read(self) -> dict[str, Any]:
        """One sample (without the step figures, which the monitor adds)."""
        now = time.time()
        procs = process_tree(self.pid)
        busy = self.cpu.read(procs)
        usable = self.rt.cpu.usable
        try:
            gpus = self.gpu_reader(self.gpus) if self.gpus else []
        except Exception:  # a reader that fails must not stop the monitor
            gpus = unknown_gpus(self.gpus)
        left = self.rt.session.time_left()
        return {
            "type": "sample", "t": now,
            "cpu": {"busy": busy, "usable": usable},
            "ram": self.ram(procs),
            "gpus": gpus,
            "shm": self.shm(),
            "disks": self.disks(now),
            "time_left": None if left is None else left.total_seconds(),
        }

    def close(self) -> None:
        """Release NVML."""
        if self._nvml is not None:
            self._nvml.close()
            self._nvml = None
