"""The :class:`Monitor`: a background sampler, step timing, threshold warnings, the timeline."""
from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._util.units import format_size
from ..errors import warn
from .budgets import as_record, price_override
from .sampler import GpuReader, Sampler
from .timeline import VERSION, TimelineWriter

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .report import Report

T = TypeVar("T")

#: Seconds between samples: frequent enough to see a loader stall or a memory climb of a few
#: seconds, rare enough to cost well under 1% of a CPU-bound step (benchmarks/bench_monitor.py).
DEFAULT_INTERVAL = 2.0
#: Fraction of the memory limit at which RAM use warns (the kernel's OOM killer acts at 100%).
RAM_WARN = 0.90
#: Fraction of a host quota, or of a disk, in use at which a path role's storage warns.
DISK_WARN = 0.95
#: Fraction of ``/dev/shm`` in use at which it warns (DataLoader workers pass batches through it).
SHM_WARN = 0.90


@dataclass(frozen=True)
class Alert:
    """A threshold crossed: ``kind`` (``ram``, ``disk`` or ``shm``), what it is about
    (``subject``: ``RAM``, a role's path, ``/dev/shm``), the fraction in use and the message."""

    kind: str
    subject: str
    fraction: float
    message: str


def _real(value: object) -> bool:
    """Whether ``value`` is a real number (``True`` is an int to Python, not a number of seconds)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class Monitor:
    """Samples the machine in a background thread while training runs, times the loop's wait
    for data, writes a timeline and warns before memory or disk run out. Build it with
    ``rt.monitor(...)`` and use it as a context manager (or ``start()``/``stop()``).

    ``interval``: seconds between samples. ``path``: the timeline file (default
    ``rt.paths.output/monitor/run-<UTC time>-<pid>.jsonl``). ``ram_warn``/``disk_warn``/``shm_warn``:
    fractions in use that warn once each (:data:`RAM_WARN`, :data:`DISK_WARN`, :data:`SHM_WARN`).
    ``on_alert``: called with each :class:`Alert`; ``checkpoint``: a function returning the state
    to save with ``rt.checkpoints.save`` at the first RAM alert. Both run in the training thread
    at the next step boundary (:meth:`step`, :meth:`wrap`, an integration's callback, or
    :meth:`stop`), so the state they see is consistent. ``gpu_reader`` replaces NVML;
    ``quotas`` (host folder → ``(bytes, why)``) replaces the host's known quotas, whose use is
    measured by walking the folder every ``quota_every`` seconds (a walk costs more than a sample).
    """

    def __init__(self, rt: Runtime, *, interval: float = DEFAULT_INTERVAL, path: str | os.PathLike[str] | None = None,
                 ram_warn: float = RAM_WARN, disk_warn: float = DISK_WARN, shm_warn: float = SHM_WARN,
                 on_alert: Callable[[Alert], Any] | None = None, checkpoint: Callable[[], Any] | None = None,
                 gpu_reader: GpuReader | None = None, quotas: Mapping[str, tuple[int, str]] | None = None,
                 quota_every: float = 60.0) -> None:
        from ..errors import PortarunError

        if not _real(interval) or not 0 < interval < math.inf:
            raise PortarunError(f"interval={interval!r}: the seconds between samples must be a positive number.")
        if not _real(quota_every) or not 0 <= quota_every < math.inf:
            raise PortarunError(f"quota_every={quota_every!r}: the seconds between quota walks must be a number, "
                                "0 (at every sample) or more.")
        for name, value in (("ram_warn", ram_warn), ("disk_warn", disk_warn), ("shm_warn", shm_warn)):
            if not _real(value) or not 0 < value <= 1:
                raise PortarunError(f"{name}={value!r}: a warning threshold is a fraction in use, "
                                    "above 0 and at most 1.")
        self.rt = rt
        self.interval = float(interval)
        self.thresholds = {"ram": ram_warn, "disk": disk_warn, "shm": shm_warn}
        self.on_alert = on_alert
        self.checkpoint = checkpoint
        self._gpu_reader = gpu_reader
        self._quotas = quotas
        self._quota_every = quota_every
        self.path = Path(path) if path is not None else self._default_path()
        self.alerts: list[Alert] = []
        self._warned: set[tuple[str, str]] = set()
        self._pending: list[Alert] = []
        self._errors: list[BaseException] = []
        self._checkpointed = False
        self._write_failed = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._sampler: Sampler | None = None
        self._writer = TimelineWriter(self.path)
        self._steps = 0
        self._wait = 0.0
        self._busy = 0.0
        self._total_steps = 0
        self._last_end: float | None = None
        self._began: float | None = None
        self._started = 0.0

    def _default_path(self) -> Path:
        from ..paths import is_remote

        folder = self.rt.paths.output
        if is_remote(folder):  # a bucket cannot be appended to line by line: keep it on local disk
            folder = self.rt.paths.scratch if not is_remote(self.rt.paths.scratch) else Path(self.rt.probe.home)
        stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
        rank = self.rt.dist.rank if self.rt.dist.world_size > 1 else None
        return Path(folder) / "monitor" / f"run-{stamp}-{os.getpid()}{'' if rank is None else f'-rank{rank}'}.jsonl"

    # -- life -----------------------------------------------------------------------------
    def start(self) -> Monitor:
        """Write the start record and start sampling (a no-op when already started)."""
        if self._thread is not None:
            return self
        from ..errors import NotAvailableError, PathError

        try:
            import psutil  # noqa: F401  the CPU and memory readings need it
        except ImportError:
            raise NotAvailableError("rt.monitor() reads CPU and memory use with psutil, which is not installed. "
                                    "Install it with `pip install portarun[monitor]` "
                                    "(psutil and nvidia-ml-py).") from None

        rt = self.rt
        quotas = self._quotas
        if quotas is None:
            quotas = dict(rt.provider.quotas())
        self._sampler = Sampler(rt, gpu_reader=self._gpu_reader, quotas=quotas, quota_every=self._quota_every)
        budgets = list(rt.provider.budgets())
        override = price_override(rt.probe.getenv("PORTARUN_PRICE_PER_HOUR"))
        if override is not None:
            budgets.append(override)
        limit = rt.session.limit
        self._started = time.time()
        try:
            self._start_record(rt, quotas, budgets, limit)
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise PathError(f"the run monitor cannot write its timeline {self.path}: {reason}. Pass "
                            "rt.monitor(path=...) in a writable folder, or set PORTARUN_OUTPUT_DIR.") from None
        self._sample()  # the baseline (and the CPU meter's first reading)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="portarun-monitor", daemon=True)
        self._thread.start()
        return self

    def _start_record(self, rt: Runtime, quotas: Mapping[str, tuple[int, str]], budgets: list[Any],
                      limit: Any) -> None:
        self._writer.write({
            "type": "start", "version": VERSION, "t": self._started, "host": rt.host.name,
            "host_name": rt.host.display_name, "project": rt.project, "pid": os.getpid(),
            "interval": self.interval, "cpus_usable": rt.cpu.usable, "ram_limit": rt.probe.memory.usable,
            "gpus": [{"index": g.index, "name": g.name, "memory": g.memory} for g in rt.probe.gpus],
            "tpu": (None if rt.probe.tpu is None
                    else {"chips": rt.probe.tpu.chips, "generation": rt.probe.tpu.generation}),
            "quotas": {folder: {"limit": lim, "why": why} for folder, (lim, why) in quotas.items()},
            "budgets": [as_record(b) for b in budgets],
            "session": {"limit": None if limit is None else limit.total_seconds(), "source": rt.session.source,
                        "started_at": rt.session.started_at.timestamp()},
            "thresholds": dict(self.thresholds),
        })

    def stop(self) -> None:
        """Take a last sample, write the end record, deliver pending alerts and stop. Raises
        an exception the sampler thread met while warning (a warning turned into an error by
        a ``warnings`` filter) here, in the caller's thread."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        try:
            self._sample()
            self._write({"type": "end", "t": time.time(), "elapsed": time.time() - self._started,
                         "steps": self._total_steps})
        except Exception as exc:  # the last sample is not worth failing the run for
            self._quiet_warn(f"the run monitor could not take its last sample: {exc}")
        finally:
            self._writer.close()
            if self._sampler is not None:
                self._sampler.close()
        self._deliver()

    def __enter__(self) -> Monitor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._sample()
            except Exception as exc:  # the monitor never stops the run: it says so and stops itself
                self._quiet_warn(f"the run monitor stopped sampling: {type(exc).__name__}: {exc}")
                return

    def _quiet_warn(self, message: str) -> None:
        """Warn from any thread; a warning a filter turns into an error is raised later in the
        training thread (:meth:`_deliver`)."""
        try:
            warn(message)
        except Exception as exc:
            self._errors.append(exc)

    def _write(self, record: dict[str, Any]) -> None:
        """Append to the timeline; a failed write (a full disk) is warned once and sampling goes
        on, so the threshold warnings still come."""
        if self._write_failed:
            return
        try:
            self._writer.write(record)
        except ValueError:  # a reading that is not a finite number: that record is left out, not the run
            return
        except OSError as exc:
            self._write_failed = True
            self._quiet_warn(f"the run monitor cannot append to {self.path} ({exc.strerror or exc}); it keeps "
                             "watching and warning, without a timeline.")

    # -- steps ----------------------------------------------------------------------------
    def note_loader(self, loader: object) -> None:
        """Record ``loader``'s ``num_workers`` and ``batch_size`` (what the advice weighs the
        data wait against); :meth:`wrap` and the integrations call it."""
        workers, size = getattr(loader, "num_workers", None), getattr(loader, "batch_size", None)
        self._write({"type": "loader", "t": time.time(), "num_workers": workers if isinstance(workers, int) else None,
                     "batch_size": size if isinstance(size, int) else None})

    def expect_batch(self) -> None:
        """The loop now waits for a batch (a new epoch's first, say): the time until
        :meth:`begin_step` counts as waiting for data."""
        self._last_end = time.perf_counter()

    def begin_step(self) -> None:
        """The batch has arrived: the time since the previous step ended was spent waiting."""
        self._began = time.perf_counter()

    def end_step(self) -> None:
        """The step is done: count it, and deliver alerts that came in meanwhile."""
        now = time.perf_counter()
        began = self._began if self._began is not None else now
        wait = began - self._last_end if self._last_end is not None else 0.0
        with self._lock:
            self._steps += 1
            self._wait += wait
            self._busy += now - began
        self._total_steps += 1
        self._began = None
        self._last_end = now
        if self._pending or self._errors:
            self._deliver()

    @contextmanager
    def step(self) -> Iterator[None]:
        """Time one training step: ``with mon.step(): train(batch)``. The time between the end
        of one step and the start of the next is the loop's wait for data."""
        self.begin_step()
        try:
            yield
        finally:
            self.end_step()

    def wrap(self, loader: Iterable[T]) -> Iterator[T]:
        """Yield ``loader``'s batches, timing how long each took to arrive (wait) and how long
        the loop spent on it (step). Notes the loader's ``num_workers`` for the advice."""
        self.note_loader(loader)
        iterator = iter(loader)
        self.expect_batch()  # the first batch's wait counts (workers starting)
        for batch in iterator:
            self.begin_step()
            yield batch
            self.end_step()

    # -- sampling and alerts --------------------------------------------------------------
    def _sample(self) -> None:
        assert self._sampler is not None
        record = self._sampler.read()
        with self._lock:
            steps, wait, busy = self._steps, self._wait, self._busy
            self._steps, self._wait, self._busy = 0, 0.0, 0.0
        record["steps"] = {"n": steps, "wait": wait, "busy": busy}
        self._write(record)
        self._check(record)

    def _check(self, sample: dict[str, Any]) -> None:
        ram = sample["ram"]
        if ram["used"] is not None and ram["limit"]:
            f = ram["used"] / ram["limit"]
            self._cross("ram", "RAM", f, lambda: (
                f"RAM at {f:.0%} of the {format_size(ram['limit'])} limit ({format_size(ram['used'])} used, counted "
                f"as {ram['source']}): the run is likely to be killed for memory. Lower the batch size or "
                "num_workers, or free what you keep in memory."))
        for role, d in sample["disks"].items():
            if d.get("quota"):
                f = d["quota_used"] / d["quota"]
                self._cross("disk", d["quota_path"], f, lambda: (
                    f"{d['quota_path']} at {format_size(d['quota_used'])} of its {format_size(d['quota'])} quota "
                    f"({f:.0%}; {d['quota_why']}): writes past it fail or are lost. Move large files to "
                    "rt.paths.scratch."))
            if d["total"]:
                f = 1 - d["free"] / d["total"]
                self._cross("disk", f"device {d['dev']}", f, lambda: (
                    f"the disk of rt.paths.{role} ({d['path']}) is {f:.0%} full, {format_size(d['free'])} free: "
                    "checkpoints and outputs will fail to save. Delete old checkpoints or move data elsewhere."))
        shm = sample["shm"]
        if shm and shm["total"]:
            f = shm["used"] / shm["total"]
            self._cross("shm", "/dev/shm", f, lambda: (
                f"/dev/shm is {f:.0%} full ({format_size(shm['total'])}): DataLoader workers pass batches through "
                "it and die with a bus error when it fills. Lower num_workers or prefetch_factor."))

    def _cross(self, kind: str, subject: str, fraction: float, message: Callable[[], str]) -> None:
        """Alert once per ``(kind, subject)`` when ``fraction`` reaches the kind's threshold
        (``message`` is built, right away, only then)."""
        if fraction < self.thresholds[kind] or (kind, subject) in self._warned:
            return
        self._warned.add((kind, subject))
        alert = Alert(kind, subject, fraction, message())
        self.alerts.append(alert)
        self._write({"type": "alert", "t": time.time(), "kind": kind, "subject": subject,
                     "fraction": fraction, "message": alert.message})
        self._quiet_warn(alert.message)
        with self._lock:
            self._pending.append(alert)

    def _deliver(self) -> None:
        """Run the callbacks for alerts that came in, in the caller's thread, then raise any
        error the sampler met."""
        with self._lock:
            pending, self._pending = self._pending, []
        for alert in pending:
            if self.on_alert is not None:
                self.on_alert(alert)
            if alert.kind == "ram" and self.checkpoint is not None and not self._checkpointed:
                self._checkpointed = True
                try:
                    self.rt.checkpoints.save(self.checkpoint(), blocking=True)
                except Exception as exc:
                    warn(f"the emergency checkpoint after the RAM warning failed: {exc}")
        if self._errors:
            error = self._errors.pop(0)
            self._errors.clear()
            raise error

    # -- results --------------------------------------------------------------------------
    def report(self, png: str | os.PathLike[str] | None = None, *, plot: bool = True) -> Report:
        """The report of this run so far (see :func:`portarun.monitor.report.build_report`):
        summary, advice and, with matplotlib installed and ``plot``, a PNG beside the
        timeline (or at ``png``). Shows inline in Jupyter."""
        from .report import build_report

        return build_report(self.path, png=png, plot=plot)
