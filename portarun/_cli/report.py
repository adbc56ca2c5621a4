"""What ``portarun info`` reports, as a JSON-able dict of sections and as text.

Each section is a function ``(runtime) -> dict`` named in :data:`SECTIONS` by
``module:function`` and imported only when the report is built. The JSON keys are stable and
documented in docs/cli.md; values of credential-like variables never appear.
"""
from __future__ import annotations

import importlib
import os
import platform
import shutil
import sys
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from .._util.files import nearest_folder
from .._util.redact import printable, shown_location
from .._util.units import format_size
from ..errors import PortarunError
from ..paths import is_remote

if TYPE_CHECKING:
    from ..runtime import Runtime

#: Report sections in order: name → "module:function". Features add theirs here.
SECTIONS: dict[str, str] = {
    "host": "portarun._cli.report:host_section",
    "paths": "portarun._cli.report:paths_section",
    "session": "portarun._cli.report:session_section",
    "projects": "portarun.paths:projects_section",
    "system": "portarun._cli.report:system_section",
    "packages": "portarun._cli.report:packages_section",
    "plugins": "portarun._cli.report:plugins_section",
    "checkpoints": "portarun.checkpoint.report:checkpoints_section",
    "accelerators": "portarun.devices:accelerators_section",
    "distributed": "portarun.distributed:distributed_section",
    "loader": "portarun.loader:loader_section",
    "diagnostics": "portarun.devices:diagnostics_section",
}

#: Distributions whose versions are shown, read from metadata without importing them.
PACKAGES = ("torch", "torch-xla", "torchvision", "numpy", "pluggy", "fsspec", "platformdirs", "nvidia-ml-py")


def host_section(rt: Runtime) -> dict[str, Any]:
    """The winning provider and why; every verdict with ``--explain``."""
    return {
        "name": rt.host.name, "display_name": rt.host.display_name, "confidence": rt.host.confidence,
        "forced": rt.host.forced, "plugin": rt.host.plugin, "plugin_version": rt.host.version,
        "evidence": list(rt.host.evidence), "project": rt.project, "project_origin": rt.project_origin,
        "ranking": [
            {"provider": v.provider, "confidence": v.confidence, "matched": v.matched, "error": v.error,
             "evidence": list(v.detection.evidence) if v.detection else [],
             "missing": list(v.detection.missing) if v.detection else []}
            for v in rt.verdicts
        ],
    }


def _free(path: Any) -> int | None:
    if is_remote(path):
        return None
    try:
        return shutil.disk_usage(nearest_folder(path)).free
    except OSError:
        return None


def paths_section(rt: Runtime) -> dict[str, Any]:
    """Each path role: where it is, whether it is remote, and free space on local disks."""
    return {
        role: {"path": str(value), "remote": is_remote(value),
               "exists": (not is_remote(value)) and os.path.isdir(value), "free_bytes": _free(str(value))}
        for role, value in ((r, rt.paths[r]) for r in rt.paths.as_dict())
    }


def session_section(rt: Runtime) -> dict[str, Any]:
    """Session start, limit, deadline and time left (seconds)."""
    s = rt.session
    left = s.time_left()
    return {
        "started_at": s.started_at.isoformat(), "limit_seconds": s.limit.total_seconds() if s.limit else None,
        "deadline": s.deadline.isoformat() if s.deadline else None,
        "time_left_seconds": round(left.total_seconds()) if left is not None else None,
        "limit_source": s.source, "start_source": s.start_source, "interactive": s.interactive,
    }


def system_section(rt: Runtime) -> dict[str, Any]:
    """CPUs (host, affinity, cgroup quota, usable), memory and /dev/shm, Python."""
    cpu, mem, shm = rt.cpu, rt.probe.memory, rt.probe.shm
    return {
        "cpus": {"logical": cpu.logical, "affinity": cpu.affinity, "quota": cpu.quota, "hint": cpu.hint,
                 "usable": cpu.usable},
        "memory": {"total_bytes": mem.total, "available_bytes": mem.available, "limit_bytes": mem.limit,
                   "usable_bytes": mem.usable},
        "shm": {"path": shm.path, "total_bytes": shm.total, "free_bytes": shm.free},
        "python": {"version": platform.python_version(), "implementation": platform.python_implementation(),
                   "executable": sys.executable},
        "platform": {"system": rt.probe.platform.system, "machine": rt.probe.platform.machine},
    }


def packages_section(rt: Runtime) -> dict[str, Any]:
    """Versions of the ML packages that matter, from metadata (nothing is imported)."""
    out: dict[str, Any] = {}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def plugins_section(rt: Runtime) -> dict[str, Any]:
    """Loaded (and skipped) plugins with their distributions and versions."""
    from ..runtime import plugin_set

    return {
        info.name: {"module": info.module, "distribution": info.distribution, "version": info.version,
                    "builtin": info.builtin, "error": info.error}
        for info in plugin_set(rt.probe.env).infos
    }


def build(rt: Runtime) -> dict[str, Any]:
    """The whole report as a JSON-able dict, one key per section. A section that cannot be
    built (a forced device that is absent, say, or a library it imports that fails to import)
    holds ``{"error": message}`` instead, so the rest of the report still comes out."""
    from .._plugins.isolation import describe_error

    data: dict[str, Any] = {"portarun_version": _own_version()}
    for name, target in SECTIONS.items():
        module, _, function = target.partition(":")
        try:
            data[name] = getattr(importlib.import_module(module), function)(rt)
        except PortarunError as exc:
            data[name] = {"error": str(exc)}
        except Exception as exc:  # the report is what people run when something is broken: it names it
            data[name] = {"error": f"this section failed: {describe_error(exc)}"}
    masked: dict[str, Any] = _masked(data)
    return masked


def _masked(value: Any) -> Any:
    """``value`` with every string passed through :func:`~portarun._util.redact.shown_location`: a
    section (a plugin's too) that puts a location with credentials in its dict never prints them."""
    if isinstance(value, str):
        return shown_location(value)
    if isinstance(value, dict):
        return {key: _masked(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_masked(item) for item in value]
    return value


def _printable(value: Any) -> Any:
    """``value`` with every string (keys too: project folder names come from the disk) passed
    through :func:`~portarun._util.redact.printable`, for the text report: a folder named with
    terminal escapes or a newline prints escaped. ``--json`` keeps the strings as they are."""
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {printable(key) if isinstance(key, str) else key: _printable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_printable(item) for item in value]
    return value


def _own_version() -> str:
    from .._version import __version__

    return __version__


def _scalar(key: str, value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int) and key.endswith("bytes"):
        return format_size(value)
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def _render(value: Any, indent: int, lines: list[str]) -> None:
    pad = "  " * indent
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key.removesuffix('_bytes')}:")
                _render(item, indent + 1, lines)
            else:
                lines.append(f"{pad}{key.removesuffix('_bytes'):<18} {_scalar(key, item) if item != [] else '-'}")
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict):
                first, *rest = item.items()
                lines.append(f"{pad}- {first[0]}: {_scalar(first[0], first[1])}")
                _render(dict(rest), indent + 2, lines)
            else:
                lines.append(f"{pad}- {item}")


def _duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _host_line(host: dict[str, Any]) -> str:
    if host.get("error"):
        return f"error: {host['error']}"
    if host["name"] == "local" and not host["forced"]:
        return "local (no hosted platform found)"
    how = "forced" if host["forced"] else f"confidence {host['confidence']:.2f}"
    return f"{host['name']} ({host['display_name']}, {how})"


def _summary_rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """One screen: host and why, project, paths, device, loader, session, distributed."""
    rows: list[tuple[str, str]] = [("host", _host_line(data["host"]))]
    rows += [("  why", line) for line in data["host"].get("evidence", [])[:3]]
    rows.append(("project", f"{data['host'].get('project', '-')} (from {data['host'].get('project_origin') or '-'})"))
    projects = data.get("projects", {})
    if isinstance(projects.get("found"), dict) and set(projects["found"]) - {data["host"].get("project")}:
        others = ", ".join(f"{name} ({count} checkpoint{'' if count == 1 else 's'})" if isinstance(count, int)
                           else f"{name} ({count})"
                           for name, count in projects["found"].items())
        rows += [("  found", others), ("  pick", projects["hint"])]
    paths = data.get("paths", {})
    if "error" in paths:
        rows.append(("paths", f"error: {paths['error']}"))
    else:
        rows += [(role, str(info.get("path"))) for role, info in paths.items()]
    acc = data.get("accelerators", {})
    device = acc.get("device") if isinstance(acc, dict) else None
    if device:
        names = ", ".join(dict.fromkeys(device.get("names") or [])) or "-"
        rows.append(("device", f"{device['kind']} × {device['count']} ({names})"))
    elif isinstance(acc, dict) and (acc.get("device_error") or acc.get("error")):
        rows.append(("device", f"error: {acc.get('device_error') or acc.get('error')}"))
    loader = data.get("loader", {})
    if isinstance(loader, dict) and "num_workers" in loader:
        rows.append(("loader", f"num_workers={loader['num_workers']} prefetch_factor={loader['prefetch_factor']} "
                               f"pin_memory={loader['pin_memory']}"))
    session = data.get("session", {})
    if isinstance(session, dict) and "limit_seconds" in session:
        if session["limit_seconds"] is None:
            rows.append(("session", "no time limit"))
        else:
            rows.append(("session", f"limit {_duration(session['limit_seconds'])}, "
                                    f"{_duration(session['time_left_seconds'] or 0)} left ({session['limit_source']})"))
    dist = data.get("distributed", {})
    if isinstance(dist, dict) and dist.get("is_distributed"):
        rows.append(("distributed", f"{dist['launcher']}: rank {dist['rank']} of {dist['world_size']} "
                                    f"(local rank {dist['local_rank']})"))
    return rows


def render_summary(data: dict[str, Any]) -> str:
    """The short ``portarun info``: one screen built from :func:`build`'s data, with pointers to
    the full report and the explanation."""
    rows = _summary_rows(_printable(data))
    width = max(len(label) for label, _ in rows)
    lines = [f"portarun {data['portarun_version']}", ""]
    lines += [f"{label:<{width}}  {value}" for label, value in rows]
    lines += ["", "Full report: portarun info --full   Why this host: portarun info --explain   JSON: --json"]
    return "\n".join(lines)


def render(data: dict[str, Any]) -> str:
    """The full readable report for data built by :func:`build` (the ranking is left to
    ``Runtime.explain()``, which ``portarun info --explain`` prints after it)."""
    data = _printable(data)
    lines = [f"portarun {data['portarun_version']}"]
    for name in SECTIONS:
        section = dict(data[name])
        if name == "host":
            section.pop("ranking", None)
        lines.append("")
        lines.append(name.upper())
        _render(section, 1, lines)
    return "\n".join(lines)
