"""The probe: the one seam through which portarun learns anything about the host.

Detection and every later decision are pure functions of a :class:`Probe`: environment
variables, which paths exist under ``root``, which modules are importable, whether this process
runs inside a Jupyter kernel, and hardware facts. Providers never touch ``os`` or ``sys``
directly. :func:`portarun.testing.simulate` builds a probe over a temporary root with chosen
facts; :meth:`Probe.real` builds the one that describes this machine.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from ._util.redact import redact_start, shown_value

if TYPE_CHECKING:  # the records load with the first hardware question, not at detect()
    from .facts import CpuFacts, GpuFacts, MemoryFacts, PlatformFacts, ShmFacts, TpuFacts


@dataclass(frozen=True, eq=False)
class Probe:
    """Facts about the host, read lazily and cached.

    ``env`` is the whole environment the probe sees. ``root`` is where absolute host paths are
    looked up (``/`` on a real machine). ``modules``: ``None`` means "ask the real import
    system"; a set means exactly these of ``host_modules`` are importable (other names still
    go to the real import system, so ``torch`` stays what it is). Any hardware fact left
    ``None`` is read from the real machine on first use.
    """

    env: Mapping[str, str]
    root: Path = Path("/")
    modules: frozenset[str] | None = None
    host_modules: frozenset[str] = frozenset()
    simulated: bool = False
    kernel: bool | None = None
    cpu_override: CpuFacts | None = None
    memory_override: MemoryFacts | None = None
    shm_override: ShmFacts | None = None
    gpus_override: tuple[GpuFacts, ...] | None = None
    tpu_override: TpuFacts | None = None
    platform_override: PlatformFacts | None = None
    started_at_override: float | None = None

    @classmethod
    def real(cls) -> Probe:
        """The probe of this process on this machine."""
        return cls(env=os.environ)

    # -- environment ---------------------------------------------------------------------
    def getenv(self, name: str, default: str | None = None) -> str | None:
        """The variable's value as this probe sees it."""
        return self.env.get(name, default)

    def env_fact(self, name: str) -> str:
        """``NAME=value`` for evidence, with credential-like values masked and a value over 120
        characters cut (a 100 kB variable would fill every report line that names it)."""
        value = shown_value(name, self.env.get(name, ""))
        return f"{name}={value if len(value) <= 120 else redact_start(value, 100)}"

    # -- filesystem ----------------------------------------------------------------------
    def path(self, host_path: str | os.PathLike[str]) -> Path:
        """Map an absolute host path (``/kaggle/input``) to where it lives under ``root``."""
        p = Path(host_path)
        if self.root == Path("/") or not p.is_absolute():
            return p
        return self.root.joinpath(*p.parts[1:])

    def is_dir(self, host_path: str) -> bool:
        """Whether the host path exists and is a folder."""
        return self.path(host_path).is_dir()

    def is_file(self, host_path: str) -> bool:
        """Whether the host path exists and is a file."""
        return self.path(host_path).is_file()

    @cached_property
    def home(self) -> Path:
        """The user's home: the real one, or ``$HOME`` (default ``/root``) under a simulated root.
        Raises :class:`~portarun.errors.PathError` when the real one cannot be found."""
        if not self.simulated:
            try:
                return Path.home()
            except RuntimeError:  # HOME unset and this user id unknown to the password database
                from .errors import PathError

                raise PathError("this process has no home folder: HOME is unset and this user id has no entry in "
                                "the password database (a container started with an arbitrary --user, say). Set "
                                "HOME to an absolute folder this user owns.") from None
        return self.path(self.env.get("HOME", "/root"))

    @cached_property
    def cwd(self) -> Path:
        """The working folder: the real one; in a simulation ``$PWD`` under root if that
        folder exists, else ``root`` itself. Raises :class:`~portarun.errors.PathError` when the
        real one has been deleted since this process entered it."""
        if not self.simulated:
            try:
                return Path.cwd()
            except FileNotFoundError:
                from .errors import PathError

                raise PathError("this process's working folder no longer exists (it was deleted after the process "
                                "entered it), and portarun names the project and places local input and output "
                                "folders from it. Change into an existing folder first (cd, or os.chdir in a "
                                "notebook).") from None
        pwd = self.env.get("PWD")
        return self.path(pwd) if pwd and self.is_dir(pwd) else self.root

    # -- modules -------------------------------------------------------------------------
    def has_module(self, name: str) -> bool:
        """Whether ``name`` is importable, without importing it (parents of a dotted name may be
        imported by the import system; they are tiny namespace packages)."""
        if self.modules is not None and (name in self.modules or name in self.host_modules):
            return name in self.modules
        if name in sys.modules:  # None there means "import blocked" (Python's convention)
            return sys.modules[name] is not None
        try:
            return importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            return False

    @cached_property
    def in_kernel(self) -> bool:
        """Whether this process is a Jupyter/IPython kernel (checked via ``sys.modules``, so a
        script started with ``!python train.py`` from a notebook cell is not one)."""
        if self.kernel is not None:
            return self.kernel
        return "ipykernel" in sys.modules

    # -- hardware ------------------------------------------------------------------------
    @cached_property
    def cpu(self) -> CpuFacts:
        """CPU counts and limits."""
        if self.cpu_override is not None:
            return self.cpu_override
        from ._machine.sysinfo import read_cpu

        return read_cpu(self.root)

    @cached_property
    def memory(self) -> MemoryFacts:
        """Memory size, availability and cgroup limit."""
        if self.memory_override is not None:
            return self.memory_override
        from ._machine.sysinfo import read_memory

        return read_memory(self.root)

    @cached_property
    def shm(self) -> ShmFacts:
        """``/dev/shm`` size and free space."""
        if self.shm_override is not None:
            return self.shm_override
        from ._machine.sysinfo import read_shm

        return read_shm(self.root)

    @cached_property
    def gpus(self) -> tuple[GpuFacts, ...]:
        """NVIDIA GPUs visible to this process (``CUDA_VISIBLE_DEVICES`` applied)."""
        if self.gpus_override is not None:
            return self.gpus_override
        if self.simulated:
            return ()
        from ._machine.accelerators import read_gpus

        return read_gpus(self)

    @cached_property
    def tpu(self) -> TpuFacts | None:
        """TPU chips on this host, or ``None``."""
        if self.tpu_override is not None or self.simulated:
            return self.tpu_override
        from ._machine.accelerators import read_tpu

        return read_tpu(self)

    @cached_property
    def platform(self) -> PlatformFacts:
        """Operating system and CPU architecture."""
        if self.platform_override is not None:
            return self.platform_override
        import platform  # costs more to import than the rest of detection; only when asked

        from .facts import PlatformFacts

        return PlatformFacts(system=platform.system(), machine=platform.machine())

    @cached_property
    def process_started_at(self) -> float:
        """When this process (a script, or the notebook kernel itself) started, as a Unix time:
        from ``/proc/self/stat``, else when portarun was imported. The local session clock."""
        if self.started_at_override is not None:
            return self.started_at_override
        started = _proc_start(Path("/"), "self")
        return started if started is not None else _imported_at

    @cached_property
    def host_started_at(self) -> float:
        """When this host's container or VM started, as a Unix time: the start of its PID 1
        (which is when a Colab or Kaggle session began), else :attr:`process_started_at`.
        On a laptop this is the machine's boot, which is why only hosted providers use it
        (:meth:`portarun.provider.Provider.session_start`)."""
        if self.started_at_override is not None:
            return self.started_at_override
        started = _proc_start(self.root, "1")
        return started if started is not None else self.process_started_at


_imported_at = time.time()


def _proc_start(root: Path, pid: str) -> float | None:
    """A process's start time from ``/proc/<pid>/stat`` field 22 (clock ticks after boot) plus
    ``btime`` from ``/proc/stat`` (proc(5)); ``None`` where there is no ``/proc``, or where either
    is not a regular file (a FIFO planted under a simulated root is not waited on)."""
    from ._util.files import read_small_text

    try:
        stat = read_small_text(root / "proc" / pid / "stat", 1 << 16) or ""
        ticks = int(stat.rsplit(")", 1)[1].split()[19])
        btime = next(
            int(line.split()[1])
            for line in (read_small_text(root / "proc/stat", 1 << 20) or "").splitlines()
            if line.startswith("btime ")
        )
        return btime + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration, AttributeError):
        return None
