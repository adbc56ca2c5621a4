"""The report's figure: utilisation, memory, data wait and storage over time (matplotlib).

Drawn on a :class:`matplotlib.figure.Figure` without pyplot, so no GUI backend or global state
is touched (a notebook shows the PNG through the report's ``_repr_html_``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .timeline import Timeline

#: Panel titles, top to bottom (tests and docs refer to them).
PANELS = ("Utilisation (%)", "Memory (% of limit)", "Data wait (% of loop time)", "Storage (% used)")


def _pct(part: Any, whole: Any) -> float | None:
    if isinstance(part, (int, float)) and isinstance(whole, (int, float)) and whole:
        return 100.0 * part / whole
    return None


def figure(timeline: Timeline) -> Figure:
    """The four-panel figure of a timeline. Raises ``ImportError`` without matplotlib."""
    from matplotlib.figure import Figure

    start, samples = timeline.start, timeline.samples
    t0 = float(start.get("t", 0.0))
    minutes = [(float(s["t"]) - t0) / 60 for s in samples]
    fig = Figure(figsize=(9, 8.5), layout="constrained")
    axes = fig.subplots(4, 1, sharex=True)
    for ax, title in zip(axes, PANELS):
        ax.set_title(title, loc="left", fontsize=10)
        ax.set_ylim(0, 105)
        ax.grid(alpha=0.3)

    def line(ax: Any, values: list[float | None], label: str, **style: Any) -> None:
        points = [(m, v) for m, v in zip(minutes, values) if v is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], label=label, **style)

    gpu_colors = ("C2", "C4", "C5", "C6", "C8", "C9")
    usable = start.get("cpus_usable") or 1
    line(axes[0], [_pct((s.get("cpu") or {}).get("busy"), usable) for s in samples], f"CPU ({usable} usable)",
         color="C0")
    # Each sample's GPU rows by index, first row wins (a search per GPU per sample was cubic in size).
    per_sample = [{} if not isinstance(s.get("gpus"), list) else
                  {r.get("index"): r for r in reversed(s["gpus"])} for s in samples]
    for g in start.get("gpus", []):
        rows: list[dict[str, Any]] = [found.get(g["index"], {}) for found in per_sample]
        line(axes[0], [r.get("util") for r in rows], f"GPU {g['index']}", color=gpu_colors[g["index"] % 6])
        line(axes[1], [_pct(r.get("mem_used"), r.get("mem_total")) for r in rows], f"GPU {g['index']} memory",
             color=gpu_colors[g["index"] % 6])
    line(axes[1], [_pct((s.get("ram") or {}).get("used"), (s.get("ram") or {}).get("limit")) for s in samples],
         "RAM", color="C1")
    line(axes[1], [_pct((s.get("shm") or {}).get("used"), (s.get("shm") or {}).get("total")) for s in samples],
         "/dev/shm", color="C7", linestyle="--")
    waits = []
    for s in samples:
        st = s.get("steps") or {}
        waits.append(_pct(st.get("wait"), (st.get("wait") or 0) + (st.get("busy") or 0)) if st.get("n") else None)
    line(axes[2], waits, "waiting for the next batch", color="C3", marker=".")
    if all(w is None for w in waits):
        axes[2].text(0.5, 0.5, "no steps timed (use mon.wrap(loader) or mon.step())", transform=axes[2].transAxes,
                     ha="center", va="center", color="0.4")
    quotas: dict[str, list[float | None]] = {}
    disks: dict[Any, tuple[list[str], list[float | None]]] = {}
    for i, s in enumerate(samples):
        for role, d in (s.get("disks") or {}).items():
            if d.get("quota"):
                quotas.setdefault(d["quota_path"], [None] * len(samples))[i] = _pct(d.get("quota_used"), d["quota"])
            roles, values = disks.setdefault(d.get("dev"), ([], [None] * len(samples)))
            if role not in roles:
                roles.append(role)
            values[i] = _pct(d["total"] - d["free"], d["total"])
    for n, (folder, values) in enumerate(quotas.items()):
        line(axes[3], values, f"{folder} (quota)", color=f"C{(n + 4) % 10}", linewidth=2)
    for n, (roles, values) in enumerate(disks.values()):
        line(axes[3], values, f"disk of {', '.join(roles)}", color="0.5", linestyle=":" if n else "-")
    for ax in axes:
        if ax.get_lines():
            ax.legend(loc="upper right", fontsize=8)
    axes[-1].set_xlabel("minutes since the monitor started")
    fig.suptitle(f"{start.get('host_name', start.get('host', ''))} run monitor: {timeline.path.name}", fontsize=11)
    return fig
