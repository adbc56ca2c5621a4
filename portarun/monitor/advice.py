"""What a timeline says: a :class:`Summary` of the measurements, and advice computed from them.

Each piece of advice is a rule over measured figures only, with its threshold here:

- data wait at or above :data:`DATA_WAIT` of the loop's time (over at least :data:`MIN_STEPS`
  timed steps): raise ``num_workers`` when it is below the usable CPUs; with as many workers as
  CPUs and the CPUs busy (:data:`CPU_BUSY`), the loader is CPU-bound; otherwise it waits on
  storage or a remote source (more workers than CPUs overlap that waiting);
- a GPU's mean utilisation below :data:`GPU_LOW` while the loop seldom waited for data: the
  GPU is starved by the step itself (small batches, host-side work, synchronisation);
- RAM peak at or above :data:`RAM_HIGH` of the limit; ``/dev/shm`` at or above :data:`SHM_HIGH`;
  a GPU's memory at or above :data:`GPU_MEM_HIGH`;
- a host quota at or above :data:`QUOTA_HIGH` in use; a role's disk with less than
  :data:`DISK_FREE_LOW` of it free.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from .._util.units import format_size
from .budgets import Budget, from_record, usage_lines
from .timeline import Timeline

DATA_WAIT = 0.20
MIN_STEPS = 10
CPU_BUSY = 0.85
GPU_LOW = 40.0
RAM_HIGH = 0.85
SHM_HIGH = 0.80
GPU_MEM_HIGH = 0.95
QUOTA_HIGH = 0.80
DISK_FREE_LOW = 0.10


@dataclass
class GpuSummary:
    """One GPU over the run: mean and peak utilisation (%), peak memory, temperature and mean power."""

    index: int
    name: str
    util_mean: float | None
    util_peak: float | None
    mem_peak: int | None
    mem_total: int | None
    temp_peak: float | None
    power_mean: float | None


@dataclass
class Summary:
    """The measurements of a timeline, condensed. Fractions are 0..1; ``None`` is "not measured"."""

    host: str
    duration: float
    steps: int
    wait_fraction: float | None
    step_seconds: float | None
    cpu_mean: float | None
    cpu_peak: float | None
    cpus_usable: int
    ram_peak: int | None
    ram_limit: int | None
    ram_source: str | None
    shm_peak: int | None
    shm_total: int | None
    gpus: list[GpuSummary]
    tpu: bool
    disks: dict[str, dict[str, Any]]
    num_workers: int | None
    time_left: float | None
    session_limit: float | None
    session_source: str | None
    budgets: list[Budget] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)
    running: bool = False


def _values(samples: list[dict[str, Any]], *keys: str) -> list[float]:
    out = []
    for s in samples:
        value: Any = s
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(float(value))
    return out


def summarize(timeline: Timeline) -> Summary:
    """Condense a timeline (finished or still running) into a :class:`Summary`."""
    start, samples = timeline.start, timeline.samples
    t0 = float(start.get("t", 0.0))
    t_end = float(timeline.end["t"]) if timeline.end else (float(samples[-1]["t"]) if samples else t0)
    steps = int(sum(_values(samples, "steps", "n")))
    wait, busy = sum(_values(samples, "steps", "wait")), sum(_values(samples, "steps", "busy"))
    cpu = _values(samples, "cpu", "busy")
    # The peak is the sample nearest its limit (a limit read per sample: it may change).
    ram_rows = [(float(r["used"]), float(r.get("limit") or start.get("ram_limit") or 0)) for r in
                (s.get("ram") for s in samples) if isinstance(r, dict) and isinstance(r.get("used"), (int, float))]
    ram_at_peak = max(ram_rows, key=lambda row: row[0] / row[1] if row[1] else 0.0, default=None)
    shm = _values(samples, "shm", "used")
    shm_total = _values(samples, "shm", "total")
    gpus = []
    by_index: dict[Any, list[dict[str, Any]]] = {}  # one pass: per GPU over every sample was cubic in size
    for s in samples:
        for r in s.get("gpus", []):
            by_index.setdefault(r.get("index"), []).append(r)
    for g in start.get("gpus", []):
        rows = by_index.get(g["index"], [])
        util = _values(rows, "util")
        mem = _values(rows, "mem_used")
        totals = _values(rows, "mem_total")
        temps = _values(rows, "temp")
        power = _values(rows, "power")
        gpus.append(GpuSummary(
            index=g["index"], name=g["name"], util_mean=statistics.fmean(util) if util else None,
            util_peak=max(util) if util else None, mem_peak=int(max(mem)) if mem else None,
            mem_total=int(totals[-1]) if totals else g.get("memory"), temp_peak=max(temps) if temps else None,
            power_mean=statistics.fmean(power) if power else None))
    disks: dict[str, dict[str, Any]] = {}
    for s in samples:
        for role, d in s.get("disks", {}).items():
            peak = max(d.get("quota_used") or 0, disks.get(role, {}).get("quota_peak") or 0)
            disks[role] = {**d, "quota_peak": peak if d.get("quota") else None,
                           "free_min": min(d["free"], disks.get(role, {}).get("free_min", d["free"]))}
    workers = [r.get("num_workers") for r in timeline.loaders if isinstance(r.get("num_workers"), int)]
    session = start.get("session") or {}
    left = _values(samples, "time_left")
    budgets = [b for b in (from_record(r) for r in start.get("budgets", [])) if b is not None]
    sources = [s["ram"].get("source") for s in samples if isinstance(s.get("ram"), dict)]
    return Summary(
        host=str(start.get("host_name") or start.get("host", "?")), duration=max(0.0, t_end - t0), steps=steps,
        wait_fraction=wait / (wait + busy) if steps and wait + busy > 0 else None,
        step_seconds=(wait + busy) / steps if steps else None,
        cpu_mean=statistics.fmean(cpu) if cpu else None, cpu_peak=max(cpu) if cpu else None,
        cpus_usable=int(start.get("cpus_usable") or 1),
        ram_peak=int(ram_at_peak[0]) if ram_at_peak else None,
        ram_limit=int(ram_at_peak[1]) if ram_at_peak and ram_at_peak[1] else (start.get("ram_limit") or None),
        ram_source=sources[-1] if sources else None,
        shm_peak=int(max(shm)) if shm else None, shm_total=int(shm_total[-1]) if shm_total else None,
        gpus=gpus, tpu=bool(start.get("tpu")), disks=disks, num_workers=workers[-1] if workers else None,
        time_left=left[-1] if left else None, session_limit=session.get("limit"), session_source=session.get("source"),
        budgets=budgets, alerts=[str(a.get("message", "")) for a in timeline.alerts], running=timeline.running,
    )


def _gb(n: float) -> str:
    """Decimal units, as hosts state their quotas ("20 GB")."""
    return f"{n / 1000**3:.1f} GB" if n >= 1000**3 else f"{n / 1000**2:.1f} MB"


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h {minutes % 60:02d}m" if minutes >= 60 else f"{minutes}m {int(seconds % 60):02d}s"


def facts(s: Summary) -> list[str]:
    """The measurements as short lines (what the report prints above the advice)."""
    lines = [f"{s.host}: {_duration(s.duration)} monitored{' (still running)' if s.running else ''}, "
             f"{s.steps} steps timed"]
    if s.wait_fraction is not None and s.step_seconds is not None:
        lines.append(f"data wait: {s.wait_fraction:.0%} of the loop's time; {s.step_seconds * 1000:.0f} ms per step")
    if s.cpu_mean is not None and s.cpu_peak is not None:
        lines.append(f"CPU: {s.cpu_mean:.1f} busy on average (peak {s.cpu_peak:.1f}) of {s.cpus_usable} usable")
    if s.ram_peak is not None and s.ram_limit:
        lines.append(f"RAM: peak {format_size(s.ram_peak)} of {format_size(s.ram_limit)} "
                     f"({s.ram_peak / s.ram_limit:.0%}; {s.ram_source})")
    for g in s.gpus:
        util = f"{g.util_mean:.0f}% busy on average" if g.util_mean is not None else "utilisation not read"
        mem = f", memory peak {format_size(g.mem_peak)} of {format_size(g.mem_total)}" if g.mem_peak is not None else ""
        temp = f", up to {g.temp_peak:.0f} °C" if g.temp_peak is not None else ""
        power = f", {g.power_mean:.0f} W on average" if g.power_mean is not None else ""
        lines.append(f"GPU {g.index} ({g.name}): {util}{mem}{temp}{power}")
    if s.shm_peak is not None and s.shm_total:
        lines.append(f"/dev/shm: peak {format_size(s.shm_peak)} of {format_size(s.shm_total)}")
    by_disk: dict[Any, list[str]] = {}
    quotas: dict[str, dict[str, Any]] = {}
    for role, d in s.disks.items():
        by_disk.setdefault(d.get("dev"), []).append(role)
        if d.get("quota") and d.get("quota_peak") is not None:
            quotas[d["quota_path"]] = d
    for roles in by_disk.values():
        d = s.disks[roles[0]]
        lines.append(f"disk of {', '.join(roles)}: {format_size(d['free_min'])} free at least "
                     f"of {format_size(d['total'])}")
    for folder, d in quotas.items():
        lines.append(f"{folder}: peak {_gb(d['quota_peak'])} of its {_gb(d['quota'])} quota")
    if s.session_limit is not None and s.time_left is not None:
        lines.append(f"session: {_duration(s.time_left)} left of the {_duration(s.session_limit)} limit "
                     f"({s.session_source})")
    lines.extend(usage_lines(s.budgets, s.duration, len(s.gpus), s.tpu))
    return lines


def advise(s: Summary) -> list[str]:
    """Advice, each line computed from the measurements (the rules are in the module's docstring)."""
    out: list[str] = []
    waited = s.wait_fraction is not None and s.steps >= MIN_STEPS and s.wait_fraction >= DATA_WAIT
    who = "the GPU" if s.gpus else "the training loop"
    if waited and s.wait_fraction is not None:
        head = f"{who} waited for data {s.wait_fraction:.0%} of the time"
        cpu_busy = s.cpu_mean is not None and s.cpu_mean >= CPU_BUSY * s.cpus_usable
        if s.num_workers is not None and s.num_workers < s.cpus_usable:
            out.append(f"{head}: raise num_workers from {s.num_workers} ({s.cpus_usable} CPUs usable) or use "
                       "rt.dataloader(..., autotune=True)")
        elif s.num_workers is None:
            out.append(f"{head}: load batches in worker processes (rt.dataloader() sizes num_workers to the "
                       f"{s.cpus_usable} usable CPUs) or use autotune=True")
        elif cpu_busy and s.cpu_mean is not None:
            out.append(f"{head} with {s.num_workers} workers on {s.cpus_usable} usable CPUs, which were "
                       f"{s.cpu_mean / s.cpus_usable:.0%} busy: the data pipeline is CPU-bound; do less per batch "
                       "(pre-process once and cache, decode on the GPU) or use a machine with more CPUs")
        else:
            out.append(f"{head} although the {s.cpus_usable} usable CPUs were not saturated: the loader waits on "
                       f"reading, not computing; more workers than CPUs overlap that waiting (num_workers="
                       f"{2 * max(s.num_workers, 1)}), or copy the data to fast local disk first (rt.stage(...))")
    for g in s.gpus:
        if g.util_mean is not None and g.util_mean < GPU_LOW and not waited and s.steps >= MIN_STEPS:
            out.append(f"GPU {g.index} was busy only {g.util_mean:.0f}% of the time although the loop seldom waited "
                       "for data: the step keeps it idle (small batches, work on the CPU, .item() every step); "
                       "raise the batch size or move the work to the GPU")
        if g.mem_peak is not None and g.mem_total and g.mem_peak >= GPU_MEM_HIGH * g.mem_total:
            out.append(f"GPU {g.index} memory peaked at {g.mem_peak / g.mem_total:.0%} of {format_size(g.mem_total)}: "
                       "close to out-of-memory; lower the batch size or use mixed precision")
    if s.ram_peak is not None and s.ram_limit and s.ram_peak >= RAM_HIGH * s.ram_limit:
        out.append(f"RAM peaked at {s.ram_peak / s.ram_limit:.0%} of the {format_size(s.ram_limit)} limit: lower the "
                   "batch size, num_workers or what the dataset keeps in memory before the kernel kills the run")
    if s.shm_peak is not None and s.shm_total and s.shm_peak >= SHM_HIGH * s.shm_total:
        out.append(f"/dev/shm peaked at {s.shm_peak / s.shm_total:.0%} of {format_size(s.shm_total)}: lower "
                   "num_workers or prefetch_factor (rt.dataloader() plans them to fit)")
    seen: set[Any] = set()
    for role, d in s.disks.items():
        if d.get("quota") and d.get("quota_peak") is not None and d["quota_path"] not in seen \
                and d["quota_peak"] >= QUOTA_HIGH * d["quota"]:
            seen.add(d["quota_path"])
            out.append(f"{d['quota_path']} at {_gb(d['quota_peak'])} of {_gb(d['quota'])} ({d['quota_why']}): "
                       "move large files to rt.paths.scratch or delete old checkpoints")
        if d["total"] and d["free_min"] < DISK_FREE_LOW * d["total"] and d.get("dev") not in seen:
            seen.add(d.get("dev"))
            out.append(f"the disk of {role} ({d['path']}) went down to {format_size(d['free_min'])} free "
                       f"({d['free_min'] / d['total']:.0%}): free space before the next save fails")
    return out
