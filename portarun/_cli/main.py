"""The ``portarun`` command line (also ``python -m portarun``).

Commands are registered in :data:`COMMANDS` as ``name → "module:function"``; each function
gets the argparse subparser to fill and returns the function that runs the command.
"""
from __future__ import annotations

import argparse
import codecs
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Sequence

from .._util.redact import printable
from ..errors import PortarunError, PortarunWarning

Runner = Callable[[argparse.Namespace], int]

COMMANDS: dict[str, str] = {
    "info": "portarun._cli.main:info_command",
    "launch": "portarun._cli.launch:launch_command",
    "monitor": "portarun.monitor.cli:monitor_command",
}


def info_command(parser: argparse.ArgumentParser) -> Runner:
    """``portarun info``: where am I running and what do I have."""
    parser.add_argument("--full", action="store_true",
                        help="print every section (system, packages, plugins, checkpoints, diagnostics, ...)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON (stable keys, docs/cli.md)")
    parser.add_argument("--explain", action="store_true", help="show every provider's verdict and evidence")
    parser.add_argument("--host", metavar="NAME", help="force a provider, like PORTARUN_HOST")
    parser.add_argument("--project", metavar="NAME", help="project name for persist/checkpoints")
    parser.add_argument("--script", metavar="PATH", help="report the project the script at PATH gets")
    parser.add_argument("--torch", action="store_true",
                        help="import torch to add what it reports (CUDA build, GPU architectures, device checks)")

    def run(args: argparse.Namespace) -> int:
        from ..runtime import detect
        from . import report

        if args.torch:
            try:
                import torch  # noqa: F401  the report's sections include torch's view once it is imported
            except Exception as exc:  # a broken install is what --torch is often run to diagnose
                from .._plugins.isolation import describe_error

                print(f"portarun: torch failed to import ({describe_error(exc)}); the report below is without "
                      "torch's view.", file=sys.stderr)

        project = args.project
        if args.script and not project:
            from ..paths import script_project
            from ..probe import Probe

            project = script_project(args.script, Probe.real().cwd).name  # PathError if the folder is gone
        rt = detect(host=args.host, project=project)
        data = report.build(rt)
        if args.json:
            print(json.dumps(data, indent=2))
        else:
            print(report.render(data) if args.full else report.render_summary(data))
            if args.explain:
                print("\nEXPLAIN\n" + rt.explain())
        return 0

    return run


def plain_text(docstring_line: str) -> str:
    """A docstring line without reStructuredText markup, for ``--help``: ````x```` and
    ``:role:`x``` become ``x``, and a leading "``portarun cmd``:" is dropped."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"\1", docstring_line).replace("``", "")
    text = re.sub(r"^portarun \w+: ", "", text)
    return text[:1].upper() + text[1:]


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, Runner]]:
    """The argument parser with every registered command."""
    from .._version import __version__

    parser = argparse.ArgumentParser(prog="portarun", description="Where am I running and what do I have?")
    parser.add_argument("--version", action="version", version=f"portarun {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Runner] = {}
    for name, target in COMMANDS.items():
        module, _, function = target.partition(":")
        factory = getattr(importlib.import_module(module), function)
        # No docstring under `python -OO`: the help line is then empty.
        summary = plain_text(((factory.__doc__ or "").strip().splitlines() or [""])[0])
        runners[name] = factory(sub.add_parser(name, help=summary, description=summary))
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status. Errors print one line, exit status 2."""
    _escape_what_the_terminal_cannot_show()
    parser, runners = build_parser()
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or args_list[0].startswith("-") and args_list[0] not in ("-h", "--help", "--version"):
        args_list.insert(0, "info")
    args = parser.parse_args(args_list)
    try:
        status = runners[args.command](args)
        if sys.stdout is not None:  # None when started with stdout closed (`>&-`)
            sys.stdout.flush()  # a closed pipe shows here, not at the interpreter's exit
        return status
    except PortarunError as exc:  # escaped: a message may quote a path named with terminal escapes
        print(f"portarun: error: {printable(str(exc))}", file=sys.stderr)
        return 2
    except PortarunWarning as exc:  # raised because a filter (-W error, PYTHONWARNINGS) says so
        print(f"portarun: error: {printable(str(exc))} (a warning, made an error by a warnings filter)",
              file=sys.stderr)
        return 2
    except BrokenPipeError:
        return _reader_gone()


def _escape_what_the_terminal_cannot_show() -> None:
    """Characters stdout's or stderr's encoding lacks (``PYTHONIOENCODING=ascii``, a C locale
    without UTF-8 coercion) are written as backslash escapes, not a UnicodeEncodeError."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure, encoding = getattr(stream, "reconfigure", None), getattr(stream, "encoding", None)
        try:
            if reconfigure is not None and encoding and codecs.lookup(encoding).name != "utf-8":
                reconfigure(errors="backslashreplace")
        except (LookupError, ValueError, OSError):  # an unknown codec, a closed stream
            pass


def _reader_gone() -> int:
    """Exit status 1 once the reader of stdout went away (``portarun info | head -1``): the rest
    of the output is dropped quietly, as Python's docs advise, so the interpreter's final flush
    raises no second BrokenPipeError (https://docs.python.org/3/library/signal.html#note-on-sigpipe)."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout replaced or closed by the caller
        pass
    return 1
