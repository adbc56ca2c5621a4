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
1 thread per rank).

Several nodes (``--nnodes N``) use torchrun's own c10d rendezvous: one ``portarun launch`` per
node, all pointed at ``--rdzv-endpoint HOST:PORT`` (a host every node reaches; the agent there
serves the rendezvous store). torchrun assigns the ranks; portarun starts no process group of
its own. Inside an ``srun`` step with one task per node, and on a SkyPilot node, the node count,
this node's rank and the endpoint come from the launcher's variables as :mod:`.distributed`
reads them (``rt.dist``): SLURM's first host of the step's node list with the job's port
(15000 + the job id's last four digits), SkyPilot's first ``SKYPILOT_NODE_IPS`` entry with
torchrun's default c10d port 29400. ``--max-restarts K`` lets torchrun restart this node's
workers K times after a failure; the script resumes from its newest checkpoint.
"""
from __future__ import annotations

import argparse
import os
import re
import runpy
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..distributed import auto_nproc
from ..errors import DistributedError

if TYPE_CHECKING:
    from ..runtime import Runtime
    from .main import Runner


@dataclass(frozen=True)
class LaunchPlan:
    """What ``portarun launch`` will run: ``argv`` to exec (torchrun) or, on TPU, ``xla`` with
    ``nproc`` processes; ``env`` holds the variables added for the children; ``reason`` says
    how ``nproc`` was chosen, ``nodes`` how many nodes take part and where that came from."""

    argv: tuple[str, ...]
    nproc: int
    env: dict[str, str]
    xla: bool
    reason: str
    nodes: str = ""


@dataclass(frozen=True)
class Nodes:
    """What ``--nnodes``/``--node-rank``/``--rdzv-endpoint``/``--rdzv-id``/``--max-restarts``
    asked for; ``None`` where not given (then read from SLURM or SkyPilot, or one node)."""

    nnodes: int | None = None
    node_rank: int | None = None
    endpoint: str | None = None
    rdzv_id: str | None = None
    max_restarts: int | None = None


#: torchrun's default c10d rendezvous port (torch/distributed/elastic/rendezvous/
#: c10d_rendezvous_backend.py ``DEFAULT_PORT``, torch 2.13).
RDZV_PORT = 29400
#: Memory of one CPU rank once torch is imported: the peak resident size of
#: ``python -c "import torch, torch.distributed"`` (GNU time's ``%M``), measured at 225,948 KB with
#: torch 2.13's CPU build on Linux x86-64. More CPU ranks than memory holds are refused.
RANK_MEMORY = 220 << 20
_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+)(?::([0-9]{1,5}))?")




def _endpoint(value: str, option: str) -> str:
    """``HOST:PORT`` checked; a bare host gets :data:`RDZV_PORT`. A host name is at most 253
    characters in labels of at most 63 (RFC 1035 section 2.3.4), which resolvers enforce."""
    match = _HOST_PORT.fullmatch(value.strip())
    if not match or (match.group(2) is not None and not 0 < int(match.group(2)) < 65536) \
            or len(match.group(1)) > 253 or max(map(len, match.group(1).split("."))) > 63:
        from .._util.redact import shown_input

        raise DistributedError(f"{option} {shown_input(value)} is not HOST:PORT (for example 10.0.0.1:29400, the "
                               "address of a host every node reaches and a free port there).")
    return f"{match.group(1)}:{match.group(2) or RDZV_PORT}"


def node_layout(rt: Runtime, asked: Nodes) -> tuple[int, int | None, str | None, str | None, str]:
    """``(nnodes, node_rank, endpoint, rdzv_id, where from)`` for this node: the options where
    given, else the SLURM step's or SkyPilot node's variables as ``rt.dist`` reads them (so
    their look-alike guards apply), else one node. Raises
    :class:`~portarun.errors.DistributedError` for an srun step with several tasks on a node
    and for several nodes without a rendezvous endpoint."""
    info = rt.dist
    nnodes, node_rank, endpoint, rdzv_id, source = 1, None, None, None, "one node"
    if info.launcher in ("slurm", "skypilot"):
        if info.local_world_size != 1:
            raise DistributedError(
                f"this srun step runs {info.local_world_size} tasks on this node, but `portarun launch` starts this "
                "node's processes itself: run one task per node (`srun --ntasks-per-node=1 portarun launch ...`).")
        nnodes, node_rank, source = info.world_size, info.node_rank, info.launcher
        port = info.master_port or (RDZV_PORT if info.launcher == "skypilot" else None)
        endpoint = f"{info.master_addr}:{port}" if info.master_addr and port else None
        job = rt.probe.getenv("SLURM_JOB_ID") if info.launcher == "slurm" else rt.probe.getenv("SKYPILOT_TASK_ID")
        rdzv_id = f"slurm-{job.strip()}" if info.launcher == "slurm" and job else job
    if asked.nnodes is not None:
        if asked.nnodes < 1:
            raise DistributedError(f"--nnodes {asked.nnodes} is not a positive number.")
        nnodes, source = asked.nnodes, "--nnodes" if source == "one node" else source
    node_rank = asked.node_rank if asked.node_rank is not None else node_rank
    if node_rank is not None and not 0 <= node_rank < nnodes:
        raise DistributedError(f"--node-rank {node_rank} is not between 0 and {nnodes - 1} (--nnodes {nnodes}).")
    endpoint = _endpoint(asked.endpoint, "--rdzv-endpoint") if asked.endpoint else endpoint
    if nnodes > 1 and endpoint is None:
        raise DistributedError(
            f"{nnodes} nodes need a rendezvous: pass --rdzv-endpoint HOST:PORT with the address of one node that every "
            "node reaches (the same on every node), e.g. `portarun launch --nnodes 2 --rdzv-endpoint 10.0.0.1:29400 "
            "train.py`.")
    return nnodes, node_rank, endpoint, asked.rdzv_id or rdzv_id, source


def plan(rt: Runtime, nproc: str, script: str, script_args: Sequence[str], nodes: Nodes | None = None) -> LaunchPlan:
    """The launch for ``script`` with ``nproc`` (``auto`` or a positive number) per node on
    ``rt``, across ``nodes`` (see :func:`node_layout`). Raises
    :class:`~portarun.errors.DistributedError` for a bad count, a missing script, or a node
    layout that cannot work."""
    if not Path(script).is_file():
        kind = ("a folder" if Path(script).is_dir() else "a FIFO" if Path(script).is_fifo()
                else "a socket or a device" if Path(script).exists() else None)
        what = f"is {kind}, not a Python file" if kind else "not found"
        raise DistributedError(f"script {script!r} {what} (working folder {os.getcwd()}). "
                               "Pass the path of a Python file: `portarun launch --nproc 2 train.py`.")
    auto, why = auto_nproc(rt)
    if nproc == "auto":
        count, reason = auto, f"--nproc auto: {why}"
    elif nproc.isascii() and nproc.isdigit() and int(nproc) > 0:  # isdigit alone takes '²', which int() refuses
        count, reason = int(nproc), f"--nproc {nproc}"
    else:
        raise DistributedError(f"--nproc {nproc!r} is not 'auto' or a positive number.")
    kind = rt.device.kind
    memory = rt.probe.memory.limit or rt.probe.memory.total
    if kind == "cpu" and memory and count * RANK_MEMORY > memory:
        raise DistributedError(
            f"--nproc {count} starts {count} processes that each import torch (about "
            f"{RANK_MEMORY >> 20} MiB each), more than the {memory / 2**30:.1f} GiB of memory here holds: use "
            f"--nproc auto or at most {memory // RANK_MEMORY}.")
    if kind in ("cuda", "mps") and count > auto:
        raise DistributedError(f"--nproc {count} asks for more processes than the {auto} {kind} device(s) here; "
                               "each process needs its own device. Use --nproc auto or a smaller number.")
    asked = nodes or Nodes()
    if asked.max_restarts is not None and asked.max_restarts < 0:
        raise DistributedError(f"--max-restarts {asked.max_restarts} is negative; use 0 (the default) or more.")
    nnodes, node_rank, endpoint, rdzv_id, source = node_layout(rt, asked)
    if kind == "xla":
        if nnodes > 1 or asked.max_restarts:
            raise DistributedError("on a TPU host portarun launch runs torch_xla's launcher on this host only; for a "
                                   "multi-host TPU slice start the script on every worker (`gcloud compute tpus tpu-vm "
                                   "ssh --worker=all`) and let torch_xla find its peers.")
        if count not in (1, auto):
            raise DistributedError(f"--nproc {count}: torch_xla runs either 1 process or one per TPU device ({auto}) "
                                   "on a host; use --nproc 1 or --nproc auto.")
        xla_argv = (sys.executable, "-m", "portarun._cli.launch", str(count), script, *script_args)
        pjrt = {"PJRT_DEVICE": rt.probe.getenv("PJRT_DEVICE") or "TPU"}
        return LaunchPlan(xla_argv, count, pjrt, True, reason, "one host")
    env: dict[str, str] = {}
    if kind == "cpu" and rt.probe.getenv("OMP_NUM_THREADS") is None:
        env["OMP_NUM_THREADS"] = str(max(1, rt.probe.cpu.usable // count))
    restarts = ("--max-restarts", str(asked.max_restarts)) if asked.max_restarts is not None else ()
    if nnodes == 1 and endpoint is None:
        argv = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes", "1",
                "--nproc-per-node", str(count), *restarts, script, *script_args)
        return LaunchPlan(argv, count, env, False, reason, "one node")
    # torchrun's c10d rendezvous: the agent whose host is the endpoint serves the store and
    # ranks are handed out as agents join. torchrun uses --node-rank only with its static
    # rendezvous (and warns otherwise), so it is passed on only when the user gave it.
    argv = (sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes), "--nproc-per-node", str(count),
            "--rdzv-backend", "c10d", "--rdzv-endpoint", str(endpoint), *(("--rdzv-id", rdzv_id) if rdzv_id else ()),
            *(("--node-rank", str(asked.node_rank)) if asked.node_rank is not None else ()), *restarts, script,
            *script_args)
    where = f"{nnodes} node(s) ({source})" + (f", this is node {node_rank}" if node_rank is not None else "")
    return LaunchPlan(argv, count, env, False, reason, where)


def launch_command(parser: argparse.ArgumentParser) -> Runner:
    """``portarun launch``: run a script once per device (torchrun; torch_xla on TPU)."""
    parser.add_argument("--nproc", default="auto", metavar="N|auto",
                        help="processes on this node (default auto: one per GPU/TPU device; CPU: half the usable "
                             "CPUs, at least 2)")
    parser.add_argument("--nnodes", type=int, default=None, metavar="N",
                        help="nodes taking part (default: from an srun step or SkyPilot, else 1)")
    parser.add_argument("--node-rank", type=int, default=None, metavar="R", help="this node's index, passed to "
                        "torchrun (its c10d rendezvous ranks nodes as they join and ignores it)")
    parser.add_argument("--rdzv-endpoint", default=None, metavar="HOST:PORT",
                        help="torchrun's c10d rendezvous, the same on every node (default: from SLURM or SkyPilot)")
    parser.add_argument("--rdzv-id", default=None, metavar="ID", help="the job's id, the same on every node "
                        "(default: SLURM_JOB_ID or SKYPILOT_TASK_ID)")
    parser.add_argument("--max-restarts", type=int, default=None, metavar="K",
                        help="restart this node's workers up to K times after a failure (torchrun's elastic restarts)")
    parser.add_argument("--dry-run", action="store_true", help="print the command instead of running it")
    parser.add_argument("script", help="the Python script to run")
    parser.add_argument("script_args", nargs=argparse.REMAINDER, help="arguments passed to the script")

    def run(args: argparse.Namespace) -> int:
        from ..runtime import detect

        nodes = Nodes(args.nnodes, args.node_rank, args.rdzv_endpoint, args.rdzv_id, args.max_restarts)
        launch = plan(detect(), args.nproc, args.script, args.script_args, nodes)
        if args.dry_run:
            extra = " ".join(f"{k}={v}" for k, v in launch.env.items())
            print(f"# {launch.reason}; {launch.nodes}\n{extra + ' ' if extra else ''}{' '.join(launch.argv)}")
            return 0
        print(f"portarun launch: {launch.nproc} process(es), {launch.reason}; {launch.nodes}", file=sys.stderr)
        for stream in (sys.stdout, sys.stderr):  # None when started with it closed (`>&-`)
            if stream is not None:
                stream.flush()
        try:
            os.execve(launch.argv[0], list(launch.argv), {**os.environ, **launch.env})
        except (OSError, ValueError) as exc:  # ValueError: an empty path
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise DistributedError(f"cannot start {launch.argv[0]!r} (sys.executable, the Python that runs the "
                                   f"launcher): {reason}. Run portarun with a Python interpreter that sys.executable "
                                   "names, as `python -m portarun launch ...`.") from None

    return run


def _run_script(index: int, script: str, script_args: Sequence[str]) -> None:
    """One torch_xla process: run ``script`` as ``__main__`` with its arguments."""
    sys.argv = [script, *script_args]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


def _xla_main(argv: Sequence[str]) -> None:
    """Entry point of ``python -m portarun._cli.launch NPROC SCRIPT [ARGS]`` on a TPU host."""
    nproc, script, *script_args = argv
    os.environ.setdefault("PJRT_DEVICE", "TPU")
    import torch_xla

    from portarun._cli.launch import _run_script as target  # picklable by module name for spawned processes

    torch_xla.launch(target, args=(script, script_args), debug_single_process=nproc == "1")


if __name__ == "__main__":
    _xla_main(sys.argv[1:])
