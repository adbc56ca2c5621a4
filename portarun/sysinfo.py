"""Readers for CPU, memory and shared-memory facts of the real machine.

Every reader takes ``root`` so that tests can point it at a fixture tree of real cgroup files;
the probe calls them with ``/``. Nothing here imports anything heavy.

Sources:
- cgroup v2 ``cpu.max`` ("$MAX $PERIOD", ``max`` = unlimited) and ``memory.max``:
  https://docs.kernel.org/admin-guide/cgroup-v2.html
- cgroup v1 ``cpu.cfs_quota_us`` (-1 = unlimited) / ``cpu.cfs_period_us`` and
  ``memory.limit_in_bytes`` (a huge number = unlimited):
  https://docs.kernel.org/scheduler/sched-bwc.html,
  https://docs.kernel.org/admin-guide/cgroup-v1/memory.html
- ``/proc/self/cgroup`` lines are ``id:controllers:path`` (``0::path`` on v2): proc(5).
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

from .facts import CpuFacts, MemoryFacts, ShmFacts

# cgroup v1 reports "no limit" as the largest page-aligned signed 64-bit value; anything at or
# above 2**62 is treated as unlimited (kernel docs above; Docker prints 9223372036854771712).
_UNLIMITED = 2**62


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _cgroup_dirs(root: Path, controller: str) -> Iterator[Path]:
    """Yield the cgroup directories governing ``controller`` for this process, innermost first,
    for both cgroup v2 (unified) and v1 layouts."""
    text = _read(root / "proc/self/cgroup") or ""
    base = root / "sys/fs/cgroup"
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, rel = parts
        if controllers == "":
            mount = base  # v2 unified hierarchy
        elif controller in controllers.split(","):
            mount = next(
                (base / name for name in (controllers, controller, "cpu,cpuacct", "cpuacct,cpu")
                 if (base / name).is_dir()),
                base / controller,
            )
        else:
            continue
        here = mount / rel.lstrip("/")
        # Inside a container the cgroup namespace maps our path to "/", but some runtimes show
        # the host path that does not exist in the container: fall back to the mount itself.
        while True:
            if here.is_dir():
                yield here
            if here == mount:
                break
            here = here.parent
        return
    if base.is_dir():
        yield base


def cpu_quota(root: Path) -> float | None:
    """The tightest CFS bandwidth limit on this process's cgroup chain, in CPUs, or ``None``."""
    best: float | None = None
    for d in [*_cgroup_dirs(root, "cpu")]:
        quota: float | None = None
        v2 = _read(d / "cpu.max")
        if v2:
            fields = v2.split()
            if fields[0] != "max" and len(fields) == 2 and int(fields[1]) > 0:
                quota = int(fields[0]) / int(fields[1])
        else:
            q, p = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
            if q and p and int(q) > 0 and int(p) > 0:
                quota = int(q) / int(p)
        if quota is not None and (best is None or quota < best):
            best = quota
    return best


def memory_limit(root: Path) -> int | None:
    """The tightest cgroup memory limit on this process's cgroup chain in bytes, or ``None``."""
    best: int | None = None
    for d in [*_cgroup_dirs(root, "memory")]:
        raw = _read(d / "memory.max") or _read(d / "memory.limit_in_bytes")
        if not raw or raw == "max":
            continue
        value = int(raw)
        if value < _UNLIMITED and (best is None or value < best):
            best = value
    return best


def _meminfo(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (_read(root / "proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[key] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    return out


def read_cpu(root: Path, hint: int | None = None) -> CpuFacts:
    """CPU facts of this process: host count, affinity, cgroup quota and a host hint."""
    logical = os.cpu_count() or 1
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return CpuFacts(logical=logical, affinity=affinity, quota=cpu_quota(root), hint=hint)


def read_memory(root: Path) -> MemoryFacts:
    """Memory facts: ``/proc/meminfo`` where present, else ``sysconf``, plus the cgroup limit."""
    info = _meminfo(root)
    if "MemTotal" in info:
        total = info["MemTotal"]
        available = info.get("MemAvailable", info.get("MemFree", total))
    else:
        try:
            page = os.sysconf("SC_PAGE_SIZE")
            total = page * os.sysconf("SC_PHYS_PAGES")
            available = page * os.sysconf("SC_AVPHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            total = available = 0
    limit = memory_limit(root)
    if limit is not None:
        available = min(available, limit)
    return MemoryFacts(total=total, available=available, limit=limit)


def read_shm(root: Path) -> ShmFacts:
    """Size and free space of ``/dev/shm`` (``None`` for both where it does not exist)."""
    path = root / "dev/shm"
    try:
        st = os.statvfs(path)
    except (OSError, AttributeError):
        return ShmFacts(path=str(path), total=None, free=None)
    return ShmFacts(path=str(path), total=st.f_blocks * st.f_frsize, free=st.f_bavail * st.f_frsize)
