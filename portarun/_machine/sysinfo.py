"""Readers for CPU, memory and shared-memory facts of the real machine.

Every reader takes ``root`` so that tests can point it at a fixture tree of real cgroup files
(tests/fixtures/cgroup/); the probe calls them with ``/``. Nothing here imports anything heavy,
and no reader raises on a missing or malformed file: an unreadable limit is "no limit known".

Sources:
- cgroup v2 ``cpu.max`` ("$MAX $PERIOD", ``max`` = unlimited) and ``memory.max`` (``max`` =
  unlimited): https://docs.kernel.org/admin-guide/cgroup-v2.html
- cgroup v1 ``cpu.cfs_quota_us`` (-1 = unlimited) / ``cpu.cfs_period_us``:
  https://docs.kernel.org/scheduler/sched-bwc.html; ``memory.limit_in_bytes`` (the largest
  page-aligned 64-bit value when unlimited): https://docs.kernel.org/admin-guide/cgroup-v1/memory.html
- ``/proc/self/cgroup`` lines are ``id:controllers:path`` (``0::path`` on v2) and
  ``/proc/self/mountinfo`` fields are ``id parent dev root mountpoint opts [optional...] - type
  source superopts``: proc(5). A cgroup path is translated through the mount's ``root`` the way
  uber-go/automaxprocs (internal/cgroups/mountpoint.go) and the JDK's CgroupSubsystem do.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .._util.files import read_small
from ..facts import CpuFacts, MemoryFacts, ShmFacts

# cgroup v1 reports "no limit" as the largest page-aligned signed 64-bit value; anything at or
# above 2**62 is treated as unlimited (kernel docs above; Docker prints 9223372036854771712).
_UNLIMITED = 2**62


def _read(path: Path) -> str | None:
    """A kernel file's stripped text, or ``None`` (missing, unreadable, not UTF-8, or not a
    regular file: see :func:`~portarun._util.files.read_small`)."""
    data = read_small(path)
    try:
        return None if data is None else data.decode("utf-8").strip()
    except UnicodeDecodeError:
        return None


#: Deeper than any real cgroup hierarchy (systemd and Kubernetes nest about ten levels).
_MAX_DEPTH = 64


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except (OSError, ValueError):  # a name too long (ENAMETOOLONG), a NUL byte
        return False


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class CgroupMount:
    """One cgroup filesystem from ``/proc/self/mountinfo``: where it is mounted (a host path),
    which part of the hierarchy it shows (``root``), its version and its v1 controllers."""

    mountpoint: str
    root: str
    version: int
    controllers: frozenset[str]


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as ``\\ooo`` octal (proc(5))."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field[i + 1:i + 4]) == 3 and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def cgroup_mounts(root: Path) -> list[CgroupMount]:
    """The cgroup (v1) and cgroup2 mounts this process sees, in mountinfo order."""
    mounts: list[CgroupMount] = []
    for line in (_read(root / "proc/self/mountinfo") or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        version = 2 if tail[0] == "cgroup2" else 1
        controllers = frozenset(tail[2].split(",")) if version == 1 else frozenset()
        mounts.append(CgroupMount(_unescape(fields[4]), _unescape(fields[3]), version, controllers))
    return mounts


def _relative(path: str, mount_root: str) -> str:
    """The cgroup ``path`` relative to a mount that shows the hierarchy from ``mount_root``.
    A path outside the mount's root (a container without a cgroup namespace seeing the host
    path) maps to the mount itself."""
    p, r = PurePosixPath(path), PurePosixPath(mount_root)
    try:
        return str(p.relative_to(r)).lstrip(".")
    except ValueError:
        return ""


def _heuristic_mount(root: Path, controllers: str, controller: str) -> Path:
    """Where the hierarchy usually is when mountinfo is unreadable: ``/sys/fs/cgroup`` (v2) or
    ``/sys/fs/cgroup/unified`` (v2 beside v1), ``/sys/fs/cgroup/<controllers>`` (v1)."""
    base = root / "sys/fs/cgroup"
    if controllers == "":
        unified = base / "unified"
        return unified if unified.is_dir() and not (base / "cgroup.controllers").exists() else base
    names = (controllers, controller, "cpu,cpuacct", "cpuacct,cpu")
    return next((base / n for n in names if (base / n).is_dir()), base / controller)


def cgroup_dirs(root: Path, controller: str) -> Iterator[Path]:
    """The cgroup folders whose limits bind this process for ``controller`` (``cpu`` or
    ``memory``), innermost first, up to the mount: a limit on any ancestor applies too.

    A v1 hierarchy carrying the controller wins over the v2 one (on a hybrid host the v2 tree
    has no such controller)."""
    entries: list[tuple[str, str]] = []
    for line in (_read(root / "proc/self/cgroup") or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3:
            entries.append((parts[1], parts[2]))
    v1 = [(c, p) for c, p in entries if controller in c.split(",")]
    v2 = [(c, p) for c, p in entries if c == ""]
    if not (v1 or v2):
        base = root / "sys/fs/cgroup"
        if base.is_dir():
            yield base
        return
    controllers, path = (v1 or v2)[0]
    if ".." in PurePosixPath(path).parts:  # a cgroup path never climbs: this one is forged
        return
    version = 2 if controllers == "" else 1
    mount_dir: Path | None = None
    rel = path.lstrip("/")
    for mount in cgroup_mounts(root):
        if mount.version == version and (version == 2 or controller in mount.controllers):
            mount_dir = root / mount.mountpoint.lstrip("/")
            rel = _relative(path, mount.root)
            break
    if mount_dir is None:
        mount_dir = _heuristic_mount(root, controllers, controller)
    levels = PurePosixPath(rel).parts
    if len(levels) > _MAX_DEPTH:  # real hierarchies are a few levels deep: this one is forged
        return
    for depth in range(len(levels), -1, -1):
        here = mount_dir.joinpath(*levels[:depth])
        if _is_dir(here):
            yield here


def _cpu_limit(folder: Path) -> float | None:
    v2 = _read(folder / "cpu.max")
    if v2 is not None:
        fields = v2.split()
        quota = _int(fields[0]) if fields and fields[0] != "max" else None
        period = _int(fields[1]) if len(fields) == 2 else 100_000  # period defaults to 100000 us
        return quota / period if quota and quota > 0 and period and period > 0 else None
    quota, period = _int(_read(folder / "cpu.cfs_quota_us")), _int(_read(folder / "cpu.cfs_period_us"))
    return quota / period if quota and quota > 0 and period and period > 0 else None


def cpu_quota(root: Path) -> float | None:
    """The tightest CFS bandwidth limit on this process's cgroup chain, in CPUs, or ``None``."""
    limits = [q for q in map(_cpu_limit, cgroup_dirs(root, "cpu")) if q is not None]
    return min(limits) if limits else None


def _memory_limit(folder: Path) -> int | None:
    raw = _read(folder / "memory.max")
    if raw is None:
        raw = _read(folder / "memory.limit_in_bytes")
    value = _int(raw) if raw != "max" else None
    return value if value is not None and 0 < value < _UNLIMITED else None


def memory_limit(root: Path) -> int | None:
    """The tightest cgroup memory limit on this process's cgroup chain in bytes, or ``None``."""
    limits = [m for m in map(_memory_limit, cgroup_dirs(root, "memory")) if m is not None]
    return min(limits) if limits else None


def _meminfo(root: Path) -> dict[str, int]:
    out: dict[str, int] = {}
    for line in (_read(root / "proc/meminfo") or "").splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[key] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    return out


def read_cpu(root: Path) -> CpuFacts:
    """CPU facts of this process as the kernel shows them: host count, affinity and cgroup quota
    (the host's own hint is applied by ``Runtime.cpu``)."""
    logical = os.cpu_count() or 1
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else logical
    return CpuFacts(logical=logical, affinity=affinity, quota=cpu_quota(root))


def read_memory(root: Path) -> MemoryFacts:
    """Memory facts: ``/proc/meminfo`` where present, else ``sysconf``, plus the cgroup limit
    (``available`` never exceeds the limit)."""
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


def default_start_method(system: str, python: tuple[int, int]) -> str:
    """The multiprocessing start method a platform uses by default: ``spawn`` on macOS (since
    Python 3.8) and Windows, ``forkserver`` on Linux from Python 3.14, else ``fork``
    (https://docs.python.org/3/library/multiprocessing.html#contexts-and-start-methods)."""
    if system in ("Darwin", "Windows"):
        return "spawn"
    return "forkserver" if python >= (3, 14) else "fork"
