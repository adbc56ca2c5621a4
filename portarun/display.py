"""How a :class:`~portarun.Runtime`, :class:`~portarun.devices.DeviceInfo` and
:class:`~portarun.loader.LoaderOptions` look in a notebook (``_repr_html_``: compact HTML tables)
and in a terminal (``str``, and IPython's pretty printer).

Guarantees: every value is HTML-escaped; credentials never appear: a secret-looking
``NAME=value`` in evidence is masked (``portarun._util.redact``), and so is the ``user:password@``
part of a URL in a path. Rendering a runtime never raises for a device problem: the error
becomes the row's value. Device diagnostics are warned by ``rt.device`` on its first access,
whether that is the rendering or your code, and once only.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._util.redact import printable, redact
from ._util.units import format_size
from .errors import PortarunError

if TYPE_CHECKING:
    from .devices import DeviceInfo
    from .loader import LoaderOptions
    from .runtime import Runtime

Row = tuple[str, ...]


# -- generic tables -------------------------------------------------------------------------
def text_table(title: str, rows: Sequence[Row]) -> str:
    """A title line and aligned columns (the last column is left ragged); control characters in
    a cell (a folder named with terminal escapes) are shown escaped."""
    rows = [tuple(printable(cell) for cell in row) for row in rows]
    widths = [max(len(r[i]) for r in rows if len(r) > i) for i in range(max(map(len, rows), default=0) - 1)]
    lines = [title]
    for row in rows:
        cells = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("  " + "  ".join(cells).rstrip())
    return "\n".join(lines)


def html_table(title: str, rows: Sequence[Row]) -> str:
    """A compact HTML table with ``title`` as its caption; every cell escaped."""
    style = "padding:1px 8px;text-align:left;vertical-align:top"
    body = "".join(
        "<tr>" + "".join(f'<{"th" if i == 0 else "td"} style="{style}">{html.escape(cell)}</{"th" if i == 0 else "td"}>'
                         for i, cell in enumerate(row)) + "</tr>"
        for row in rows)
    return (f'<table style="border-collapse:collapse;font-size:0.9em"><caption style="text-align:left;'
            f'font-weight:bold">{html.escape(title)}</caption>{body}</table>')


# -- rows of each object ----------------------------------------------------------------------
def device_rows(info: DeviceInfo) -> list[Row]:
    """``DeviceInfo`` as label/value rows."""
    names = ", ".join(info.names) or "-"
    memory = ", ".join(format_size(m) for m in info.memory) if info.memory else "-"
    rows: list[Row] = [
        ("kind", f"{info.kind} × {info.count}" + (f" (using index {info.index})" if info.kind == "cuda" else "")),
        ("names", names), ("memory", memory), ("bf16", "yes" if info.bf16 else "no"),
        ("amp_dtype", info.amp_dtype or "none (full precision)"),
    ]
    rows += [("decision", d) for d in info.decision[:1]]
    rows += [("diagnostic", d) for d in info.diagnostics]
    return [tuple(redact(c) for c in r) for r in rows]


def loader_rows(options: LoaderOptions) -> list[Row]:
    """``LoaderOptions`` as setting/value/reason rows, then the facts they came from."""
    values = {"num_workers": options.num_workers, "prefetch_factor": options.prefetch_factor,
              "persistent_workers": options.persistent_workers, "pin_memory": options.pin_memory,
              "multiprocessing_context": options.multiprocessing_context, "transfer": options.transfer}
    rows: list[Row] = [(key, str(value), options.reasons.get(key, "")) for key, value in values.items()]
    rows += [(key, "(yours)", note) for key, note in options.overridden.items()]
    f = options.facts
    rows.append(("facts", f"{f.cpus} CPUs", f"{f.local_world_size} local rank(s); device {f.device_kind}; start "
                 f"method {f.start_method}; /dev/shm free {format_size(f.shm_free)}; RAM available "
                 f"{format_size(f.memory_available)}"))
    return [tuple(redact(c) for c in r) for r in rows]


def _device_summary(rt: Runtime) -> str:
    try:
        info = rt.device  # warns its diagnostics on first access, as it always does
        loader = rt.loader
    except PortarunError as exc:
        return f"unavailable: {exc}"
    names = f" ({', '.join(sorted(set(info.names)))})" if info.names and info.kind != "cpu" else ""
    amp = f", amp {info.amp_dtype}" if info.amp_dtype else ""
    return (f"{info.kind} × {info.count}{names}{amp}; DataLoader: {loader.num_workers} workers, "
            f"pin_memory={loader.pin_memory}")


def runtime_rows(rt: Runtime) -> list[Row]:
    """``Runtime`` as label/value rows: host, evidence, project, paths, session, device."""
    host = rt.host
    rows: list[Row] = [
        ("host", f"{host.display_name} ({host.name}), confidence {host.confidence:.2f}"
                 + (" [forced]" if host.forced else "") + f", plugin {host.plugin}"
                 + (f" {host.version}" if host.version else "")),
    ]
    rows += [("evidence", e) for e in host.evidence]
    rows.append(("project", rt.project))
    rows += [(role, value) for role, value in rt.paths.as_dict().items()]
    left = rt.session.time_left()
    rows.append(("session", ("no time limit" if left is None else f"{_duration(left.total_seconds())} left")
                 + f" ({rt.session.source})" + ("; interactive" if rt.session.interactive else "")))
    rows.append(("device", _device_summary(rt)))
    if rt.dist.is_distributed:
        d = rt.dist
        rows.append(("distributed", f"rank {d.rank}/{d.world_size} (local {d.local_rank}/{d.local_world_size}, "
                                    f"node {d.node_rank}) via {d.launcher}"))
    return [tuple(redact(c) for c in r) for r in rows]


def _duration(seconds: float) -> str:
    minutes, _ = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


# -- entry points for the classes' thin methods --------------------------------------------------
def runtime_text(rt: Runtime) -> str:
    """``str(rt)``: the runtime as an aligned table."""
    return text_table("portarun runtime", runtime_rows(rt))


def runtime_html(rt: Runtime) -> str:
    """``rt._repr_html_()``: the runtime as an HTML table."""
    return html_table("portarun runtime", runtime_rows(rt))


def device_text(info: DeviceInfo) -> str:
    """The device as an aligned table."""
    return text_table("device", device_rows(info))


def device_html(info: DeviceInfo) -> str:
    """``DeviceInfo._repr_html_()``: the device as an HTML table."""
    return html_table("device", device_rows(info))


def loader_text(options: LoaderOptions) -> str:
    """The DataLoader settings as an aligned table (as :meth:`LoaderOptions.explain`, tabular)."""
    return text_table("DataLoader settings", loader_rows(options))


def loader_html(options: LoaderOptions) -> str:
    """``LoaderOptions._repr_html_()``: the DataLoader settings as an HTML table."""
    return html_table("DataLoader settings", loader_rows(options))
