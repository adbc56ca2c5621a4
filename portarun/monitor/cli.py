"""``portarun monitor report``: a run's summary, advice and plot from its timeline."""
from __future__ import annotations

import argparse
import json
import stat
from dataclasses import asdict
from pathlib import Path

from .._cli.main import Runner
from .timeline import TimelineError


def latest_timeline(folder: Path) -> Path:
    """The most recently written timeline under ``folder`` (regular files only: a dangling link,
    a link loop or a folder named ``*.jsonl`` is passed over); raises :class:`TimelineError`."""
    found = sorted((mtime, path) for path in (folder.glob("*.jsonl") if folder.is_dir() else ())
                   if (mtime := _file_mtime(path)) is not None)
    if not found:
        raise TimelineError(f"no monitor timeline under {folder}. Run training inside `with rt.monitor():` first, "
                            "or pass the path of a timeline (.jsonl).")
    return found[-1][1]


def _file_mtime(path: Path) -> float | None:
    """When the regular file at ``path`` was last written; ``None`` for anything else."""
    try:
        info = path.stat()
    except OSError:  # gone since listed, a dangling link, a link loop
        return None
    return info.st_mtime if stat.S_ISREG(info.st_mode) else None


def monitor_command(parser: argparse.ArgumentParser) -> Runner:
    """``portarun monitor``: report on a run recorded by ``rt.monitor()`` (summary, advice, plot)."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    report = sub.add_parser("report", help="summary, advice and a PNG plot of a run's timeline",
                            description="Summary, advice and a PNG plot of a run's timeline.")
    report.add_argument("timeline", nargs="?", metavar="RUN.jsonl",
                        help="the timeline (default: the newest under rt.paths.output/monitor)")
    report.add_argument("--png", metavar="PATH", help="where to write the plot (default: beside the timeline)")
    report.add_argument("--no-plot", action="store_true", help="text only")
    report.add_argument("--json", action="store_true", help="print the summary and advice as JSON")

    def run(args: argparse.Namespace) -> int:
        from ..paths import is_remote
        from ..runtime import detect
        from .report import build_report

        path = args.timeline
        if path is None:
            output = detect().paths.output
            if is_remote(output):
                raise TimelineError(f"rt.paths.output is {output}; pass the path of a local timeline (.jsonl).")
            path = latest_timeline(Path(output) / "monitor")
        result = build_report(path, png=args.png, plot=not args.no_plot and not args.json)
        if args.json:
            summary = asdict(result.summary)
            summary["budgets"] = [b._asdict() for b in result.summary.budgets]
            print(json.dumps({"timeline": str(result.timeline), "facts": result.facts, "advice": result.advice,
                              "summary": summary}, indent=2, default=str))
        else:
            print(result.text())
        return 0

    return run
