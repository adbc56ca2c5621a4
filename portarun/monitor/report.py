"""The report: a summary of the measurements, advice computed from them, and a PNG plot."""
from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass
from pathlib import Path

from .._util.files import write_bytes_atomic
from .._util.redact import printable
from ..errors import PathError, PortarunError
from .advice import Summary, advise, facts, summarize
from .timeline import TimelineError, read_timeline

#: Said when matplotlib is missing, instead of a plot.
NO_MATPLOTLIB = ("no plot: matplotlib is not installed. Install it with `pip install portarun[plot]` "
                 "(or `pip install matplotlib`) and run the report again.")


@dataclass
class Report:
    """A run's report: the ``summary`` (measurements), the ``advice`` lines, the ``png`` written
    (``None`` without one) and ``note`` (why there is no plot). ``str(report)`` is the text;
    in Jupyter it shows with the plot inline."""

    timeline: Path
    summary: Summary
    facts: list[str]
    advice: list[str]
    png: Path | None
    note: str | None = None

    def text(self) -> str:
        """The report as plain text."""
        lines = ["Run monitor report: " + str(self.timeline), *("  " + f for f in self.facts)]
        lines.append("Advice:" if self.advice else "Advice: none; nothing measured called for a change.")
        lines.extend("  - " + a for a in self.advice)
        if self.summary.alerts:
            lines.append("Warnings during the run:")
            lines.extend("  ! " + a for a in self.summary.alerts)
        if self.png is not None:
            lines.append(f"Plot: {self.png}")
        if self.note:
            lines.append(self.note)
        # Each line escaped on its own: a timeline's text and its path are anyone's (terminal escapes).
        return "\n".join(printable(line) for line in lines)

    def __str__(self) -> str:
        return self.text()

    def _repr_html_(self) -> str:
        from html import escape

        image = ""
        if self.png is not None and self.png.is_file():
            data = base64.b64encode(self.png.read_bytes()).decode()
            image = f'<img src="data:image/png;base64,{data}" style="max-width:100%"/>'
        return f"<pre>{escape(self.text())}</pre>{image}"


#: What reading a field of the wrong type or range raises (every line parsed as JSON, but a
#: record's fields are not what the monitor writes).
_MISSHAPEN = (TypeError, ValueError, KeyError, AttributeError, IndexError, OverflowError)


def _misshapen(path: Path, exc: Exception) -> TimelineError:
    return TimelineError(f"{path} holds a monitor record whose fields are not what rt.monitor() writes "
                         f"({type(exc).__name__} while reading it): it was edited or written by another program. "
                         "Pass a timeline that rt.monitor() wrote.")


def _entry(path: Path) -> tuple[str, str]:
    """The folder entry a path names (its folder with links resolved, and its name): the plot
    is renamed into place, which replaces that entry."""
    return os.path.realpath(path.parent), path.name


def build_report(path: str | os.PathLike[str], *, png: str | os.PathLike[str] | None = None,
                 plot: bool = True) -> Report:
    """Read the timeline at ``path`` (finished or still being written) and build its report.
    With ``plot`` and matplotlib installed, the figure is saved as ``png`` (default: the
    timeline's path with ``.png``). Raises :class:`~portarun.monitor.timeline.TimelineError`
    for a file that is not a timeline."""
    timeline = read_timeline(path)
    try:
        summary = summarize(timeline)
        lines, advice = facts(summary), advise(summary)
    except _MISSHAPEN as exc:
        raise _misshapen(timeline.path, exc) from exc
    written: Path | None = None
    note: str | None = None
    if plot:
        try:
            import matplotlib.figure  # noqa: F401  its settings (MPLBACKEND, matplotlibrc) are checked here
        except ImportError:
            note = NO_MATPLOTLIB
        except (ValueError, RuntimeError, OSError, KeyError) as exc:
            raise PortarunError(f"matplotlib cannot start ({type(exc).__name__}: {str(exc)[:200]}): fix its settings "
                                "(MPLBACKEND, matplotlibrc), or pass --no-plot (plot=False) for the text "
                                "alone.") from None
        else:
            from .plot import figure

            written = Path(png) if png is not None else timeline.path.with_suffix(".png")
            if _entry(written) == _entry(timeline.path):  # the rename would replace the run's only record
                raise PathError(f"the plot would replace the timeline it is drawn from ({timeline.path}). Pass --png "
                                "(png=) with another file path, or --no-plot (plot=False).")
            image = io.BytesIO()
            try:
                figure(timeline).savefig(image, dpi=90, format="png")
            except _MISSHAPEN as exc:
                raise _misshapen(timeline.path, exc) from exc
            try:  # a reader (a notebook refreshing the image) never sees half a PNG
                write_bytes_atomic(written, image.getvalue())
            except (OSError, ValueError) as exc:  # ValueError: a path with no file name ('', '.', '/')
                reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else "it names no file"
                raise PathError(f"cannot write the plot to {written}: {reason}. Pass --png (png=) with "
                                "a writable file path, or --no-plot (plot=False) for the text alone.") from None
    return Report(timeline=timeline.path, summary=summary, facts=lines, advice=advice, png=written, note=note)
