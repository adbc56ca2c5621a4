"""``portarun launch``: start a training script once per accelerator with the existing engines.

On CUDA, MPS and CPU hosts the script runs under ``torch.distributed.run`` (torchrun) on this
node: ``python -m torch.distributed.run --standalone --nnodes 1 --nproc-per-node N script.py``
(https://docs.pytorch.org/docs/stable/elastic/run.html). The launcher process is *replaced* by
torchrun (``exec``), so signals and the exit status are torchrun's own. On a TPU host the
script runs under torch_xla's launcher, ``torch_xla.launch`` (one process per TPU chip via
``xmp.spawn``; pytorch/xla ``torch_xla.py`` @7618f5d4), each process running the script as
``__main__``.

``--nproc auto`` is the number of usable devices: visible GPUs, 1 on MPS, and on CPU half the
usable CPUs but at least 2 (1 on a single-CPU machine), so that a DDP script's collectives run
for real even on a laptop, leaving the rest for data loading; each CPU rank then gets
``OMP_NUM_THREADS`` = usable CPUs / ranks unless already set (torchrun would otherwise force
1 thread per rank). Multi-node runs: use torchrun or ``srun`` directly; ``rt.dist`` and
``rt.init_distributed()`` understand both.
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DistributedError

if TYPE_CHECKING:
    from .cli import Runner
    from .runtime import Runtime


@dataclass(frozen=True)
class LaunchPlan:
    """What ``portarun launch`` will run: ``argv`` to exec (torchrun) or, on TPU, ``xla`` with
    ``nproc`` processes; ``env`` holds the variables added for the children; ``reason`` says
    how ``nproc`` was chosen."""

    argv: tuple[str, ...]
    nproc: int
    env: dict[str, str]
    xla: bool
    reason: str


def auto_nproc(rt: Runtime) -> tuple[int, str]:
    """The process count for ``--nproc auto`` and why."""
    device = rt.device
    if device.kind in ("cuda", "xla"):
        return device.count, f"{device.count} {device.kind} device(s)"
    if device.kind == "mps":
        return 1, "one MPS device"
    usable = rt.probe.cpu.usable
    if usable < 2:
        return 1, f"{usable} usable CPU: one process (pass --nproc N to run more ranks anyway)"
    # Two ranks at least: a one-process launch runs no collective, so a DDP script that works
    # under `portarun launch` here could still fail on a real multi-device machine.
    return max(2, usable // 2), f"half of {usable} usable CPUs, at least 2 ranks so collectives really run"


def plan(rt: Runtime, nproc: str, script: str, script_args: Sequence[str]) -> LaunchPlan:
    """The launch for ``script`` with ``nproc`` (``auto`` or a positive number) on ``rt``.
    Raises :class:`~portarun.errors.DistributedError` for a bad count or a missing script."""
    if not Path(script).is_file():
        raise DistributedError(f"script {script!r} not found (working folder {os.getcwd()}). "
                               "Pass the path of a Python file: `portarun launch --nproc 2 train.py`.")
    auto, why = auto_nproc(rt)
    if nproc == "auto":
        count, reason = auto, f"--nproc auto: {why}"
    elif nproc.isdigit() and int(nproc) > 0:
        count, reason = int(nproc), f"--nproc {nproc}"
    else:
        raise DistributedError(f"--nproc {nproc!r} is not 'auto' or a positive number.")
    kind = rt.device.kind
    if kind in ("cuda", "mps") and count > auto:
        raise DistributedError(f"--nproc {count} asks for more processes than the {auto} {kind} device(s) here; "
                               "each process needs its own device. Use --nproc auto or a smaller number.")
    if kind == "xla":
        if count not in (1, auto):
            raise DistributedError(f"--nproc {count}: torch_xla runs either 1 process or one per TPU device ({auto}) "
                                   "on a host; use --nproc 1 or --nproc auto.")
        argv = (sys.executable, "-m", "portarun.launch", str(count), script, *script_args)
        return LaunchPlan(argv, count, {"PJRT_DEVICE": rt.probe.getenv("PJRT_DEVICE") or "TPU"}, True, reason)
    env: dict[str, str] = {}
    if kind == "cpu" and rt.probe.getenv("OMP_NUM_THREADS") is None:
        env["OMP_NUM_THREADS"] = str(max(1, rt.probe.cpu.usable // count))
    argv = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
            "--nproc-per-node", str(count), script, *script_args)
    return LaunchPlan(argv, count, env, False, reason)


def launch_command(parser: argparse.ArgumentParser) -> Runner:
    """``portarun launch``: run a script once per device (torchrun; torch_xla on TPU)."""
    parser.add_argument("--nproc", default="auto", metavar="N|auto",
                        help="processes on this node (default auto: one per GPU/TPU device; CPU: half the usable "
                             "CPUs, at least 2)")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    parser.add_argument("script", help="the Python script to run")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments passed to the script")

    def run(args: argparse.Namespace) -> int:
        from .runtime import detect

        launch = plan(detect(), args.nproc, args.script, args.script_args)
        if args.dry_run:
            extra = " ".join(f"{k}={v}" for k, v in launch.env.items())
            print(f"# {launch.reason}\n{extra + ' ' if extra else ''}{' '.join(launch.argv)}")
            return 0
        print(f"portarun launch: {launch.nproc} process(es), {launch.reason}", file=sys.stderr)
        sys.stdout.flush()
        sys.stderr.flush()
        os.execve(launch.argv[0], list(launch.argv), {**os.environ, **launch.env})

    return run


def _run_script(index: int, script: str, script_args: Sequence[str]) -> None:
    """One torch_xla process: run ``script`` as ``__main__`` with its arguments."""
    sys.argv = [script, *script_args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


def _xla_main(argv: Sequence[str]) -> None:
    """Entry point of ``python -m portarun.launch NPROC SCRIPT [ARGS]`` on a TPU host."""
    nproc, script, *script_args = argv
    os.environ.setdefault("PJRT_DEVICE", "TPU")
    import torch_xla

    from portarun.launch import _run_script as target  # picklable by module name for spawned processes

    torch_xla.launch(target, args=(script, script_args), debug_single_process=nproc == "1")


if __name__ == "__main__":
    _xla_main(sys.argv[1:])
