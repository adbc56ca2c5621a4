"""``portarun.notebook_launch(fn, *args, nproc="auto")``: run ``fn(*args)`` once per device from a
notebook cell (or a script) and return each process's result, rank 0 first.

* **CUDA and CPU**: ``nproc`` processes *forked* from this one, so ``fn`` may be defined in the
  notebook itself (``spawn`` would have to import it from a file). Each child gets torch's env://
  variables (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``MASTER_ADDR=127.0.0.1``,
  a free ``MASTER_PORT``), so ``portarun.detect()`` inside ``fn`` sees its place in ``rt.dist``
  (launcher ``env``), ``rt.device`` is its own GPU, and ``rt.init_distributed()`` starts nccl or
  gloo. On CPU each child gets its share of the usable CPUs as torch threads.
* **CUDA is checked without being initialised**: a forked child cannot use CUDA once the parent
  has initialised it (torch raises "Cannot re-initialize CUDA in forked subprocess", or the
  children hang: the usual cause of Lightning's ``ddp_notebook`` hanging on Kaggle's two T4s).
  The GPU count is ``rt.device.count``, read through NVML or ``/proc`` without a CUDA context,
  as Lightning's ``_device_count_nvml`` does
  (Lightning-AI/pytorch-lightning@0c4f4690:src/lightning/fabric/accelerators/cuda.py), and a
  parent whose CUDA is already initialised is refused before anything is forked, as Lightning's
  ``_check_bad_cuda_fork`` does
  (Lightning-AI/pytorch-lightning@22a15f27:src/lightning/fabric/strategies/launchers/multiprocessing.py).
* **TPU**: torch_xla's own launcher, ``torch_xla.launch(fn, args, start_method, debug_single_process)``
  (pytorch/xla@022ecde6:torch_xla/torch_xla.py), with ``start_method="fork"`` for the same
  reason; torch_xla pickles the function by name, so on TPU ``fn`` must be a top-level ``def``
  (a notebook's ``def`` is). ``nproc`` is 1 or one per TPU device.

A worker that raises makes :func:`notebook_launch` raise :class:`WorkerError` naming the rank,
with that worker's traceback; the other workers get a few seconds to finish, then are stopped.
Results travel back pickled, through a private temporary folder removed afterwards.
"""
from __future__ import annotations

import multiprocessing
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import DistributedError

if TYPE_CHECKING:
    from multiprocessing.context import ForkProcess

    from .runtime import Runtime

T = TypeVar("T")

#: Seconds the other workers get to finish once one has failed, before they are stopped (they
#: are usually blocked in a collective that will never complete).
FAILURE_GRACE = 5.0


class WorkerError(DistributedError):
    """A worker of :func:`notebook_launch` failed. ``rank`` is its rank, ``worker_traceback``
    its traceback as text (``None`` when it died without a Python error)."""

    def __init__(self, rank: int, world: int, summary: str, worker_traceback: str | None) -> None:
        self.rank, self.worker_traceback = rank, worker_traceback
        shown = f"\n\nTraceback of rank {rank}:\n{worker_traceback.rstrip()}" if worker_traceback else ""
        super().__init__(f"rank {rank} of {world} failed: {summary}{shown}")


def notebook_launch(fn: Callable[..., T], *args: Any, nproc: int | str = "auto",
                    timeout: float | None = None) -> list[T]:
    """Run ``fn(*args)`` in ``nproc`` processes (``"auto"``: one per GPU or TPU device; on CPU
    half the usable CPUs, at least 2) and return their results in rank order.

    Raises :class:`WorkerError` when a worker raises or dies (with its rank and traceback), and
    :class:`~portarun.errors.DistributedError` before starting anything when it cannot work:
    CUDA already initialised in this process, a process group already started here, this
    process already one rank of a launch, a bad ``nproc``, more processes than devices, a
    platform without ``fork``, or ``timeout`` seconds passed (then every worker is stopped).
    """
    from .distributed import auto_nproc
    from .runtime import detect

    rt = detect()
    if rt.dist.is_distributed:
        raise DistributedError(f"this process is already rank {rt.dist.rank} of {rt.dist.world_size} "
                               f"({rt.dist.launcher}); call fn directly instead of notebook_launch.")
    dist = sys.modules.get("torch.distributed")
    if dist is not None and dist.is_available() and dist.is_initialized():
        raise DistributedError("a torch.distributed process group already exists in this process; the workers "
                               "start their own. Restart the kernel, or call dist.destroy_process_group() first.")
    kind = rt.device.kind
    auto, _ = auto_nproc(rt)
    count = _count(nproc, auto, kind)
    if kind == "xla":
        return _run_xla(fn, args, count)
    if kind == "cuda":
        _refuse_initialised_cuda()
    if "fork" not in multiprocessing.get_all_start_methods():
        raise DistributedError("notebook_launch forks its workers, and this platform cannot fork; run the code as "
                               "a script with `portarun launch --nproc N script.py` instead.")
    threads = max(1, rt.probe.cpu.usable // count) if kind == "cpu" else None
    return _run_forked(rt, fn, args, count, threads, timeout)


def _count(nproc: int | str, auto: int, kind: str) -> int:
    text = str(nproc).strip()
    if text == "auto":
        return auto
    if not text.isascii() or not text.isdigit() or int(text) < 1 or isinstance(nproc, bool):
        raise DistributedError(f"nproc={nproc!r} is not 'auto' or a positive number.")
    count = int(text)
    if kind in ("cuda", "mps") and count > auto:
        raise DistributedError(f"nproc={count} asks for more processes than the {auto} {kind} device(s) here; each "
                               "process needs its own device. Use nproc='auto' or a smaller number.")
    if kind == "xla" and count not in (1, auto):
        raise DistributedError(f"nproc={count}: torch_xla runs either 1 process or one per TPU device ({auto}); "
                               "use nproc=1 or nproc='auto'.")
    return count


def _refuse_initialised_cuda() -> None:
    """Raise when this process has a CUDA context: forked children could not use the GPUs.
    Asking torch whether CUDA is initialised does not initialise it; a parent that never
    imported torch has none."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise DistributedError(
            "CUDA is already initialised in this process, so the processes notebook_launch forks could not use the "
            "GPUs (they would fail with 'Cannot re-initialize CUDA in forked subprocess', or hang). Restart the "
            "kernel and call notebook_launch before anything touches the GPU: create the model, move it with "
            ".to(rt.device.torch()) and call torch.cuda.* only inside the launched function.")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _run_forked(rt: Runtime, fn: Callable[..., T], args: tuple[Any, ...], count: int, threads: int | None,
                timeout: float | None) -> list[T]:
    folder = Path(tempfile.mkdtemp(prefix="portarun-notebook-launch-"))
    env = {"WORLD_SIZE": str(count), "LOCAL_WORLD_SIZE": str(count), "MASTER_ADDR": "127.0.0.1",
           "MASTER_PORT": str(_free_port())}
    context = multiprocessing.get_context("fork")
    procs: list[ForkProcess] = []
    try:
        for rank in range(count):
            rank_env = {**env, "RANK": str(rank), "LOCAL_RANK": str(rank)}
            procs.append(context.Process(target=_worker, args=(rank, rank_env, threads, fn, args, folder),
                                         name=f"portarun-rank{rank}", daemon=True))
            procs[-1].start()
        _wait(procs, timeout)
        return _results(procs, folder)
    finally:
        _stop(procs)
        shutil.rmtree(folder, ignore_errors=True)


def _wait(procs: list[ForkProcess], timeout: float | None) -> None:
    """Until every worker has exited; once one fails, the others get :data:`FAILURE_GRACE`."""
    deadline = time.monotonic() + timeout if timeout is not None else None
    failed_at: float | None = None
    while any(p.exitcode is None for p in procs):
        now = time.monotonic()
        if failed_at is None and any(p.exitcode not in (None, 0) for p in procs):
            failed_at = now
        if failed_at is not None and now - failed_at > FAILURE_GRACE:
            return
        if deadline is not None and now > deadline:
            raise DistributedError(f"the {len(procs)} workers did not finish within timeout={timeout} s; they were "
                                   "stopped. Raise timeout, or look for a rank waiting in a collective the others "
                                   "never reach.")
        procs[0].join(0.05)


def _stop(procs: list[ForkProcess]) -> None:
    """Stop the workers still running: SIGTERM, then SIGKILL after a few seconds."""
    for p in procs:
        if p.exitcode is None:
            p.terminate()
    for p in procs:
        p.join(3)
        if p.exitcode is None:
            p.kill()
            p.join()


def _results(procs: list[ForkProcess], folder: Path) -> list[T]:
    outcomes = [_outcome(folder, rank) for rank in range(len(procs))]
    for rank, outcome in enumerate(outcomes):  # the first Python error, not the ranks stopped after it
        if outcome is not None and "error" in outcome:
            raise WorkerError(rank, len(procs), outcome["error"], outcome["traceback"])
    for rank, (p, outcome) in enumerate(zip(procs, outcomes)):
        if outcome is None:
            code = p.exitcode or 0
            how = f"was killed by signal {-code} ({_signal_name(-code)})" if code < 0 else f"exited with code {code}"
            raise WorkerError(rank, len(procs), f"the process {how} without a Python error (out of memory, a crash "
                              "in native code, or os._exit in the function)", None)
    return [outcome["result"] for outcome in outcomes if outcome is not None]


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return "unknown signal"


def _outcome(folder: Path, rank: int) -> dict[str, Any] | None:
    path = folder / f"rank{rank}.pickle"
    if not path.is_file():
        return None
    with path.open("rb") as f:
        outcome: dict[str, Any] = pickle.load(f)  # written by our own child into our private folder
    return outcome


def _record(folder: Path, rank: int, outcome: dict[str, Any]) -> None:
    """Write a worker's outcome atomically (a half-written file is never read)."""
    part = folder / f"rank{rank}.pickle.part"
    try:
        data = pickle.dumps(outcome)
    except Exception as exc:  # an unpicklable result is reported as this rank's failure
        data = pickle.dumps({"error": f"its return value cannot be sent back ({type(exc).__name__}: {exc}); return "
                                      "plain values, tensors or state dicts", "traceback": None})
    part.write_bytes(data)
    os.replace(part, folder / f"rank{rank}.pickle")


def _forget_parent_detection(env: dict[str, str]) -> None:
    """A forked child starts with the parent's cached runtime and probe (rank 0 of 1): drop them
    so ``portarun.detect()`` reads this child's variables. Inside a simulation
    (:func:`portarun.testing.simulate`) the host's variables come from the simulated probe, so
    the child's launcher variables ``env`` are added to a copy of it."""
    import dataclasses

    from ._plugins.state import STATE

    STATE.forget_detection()
    if env and STATE.simulation_depth():
        probe = STATE.current_probe()
        STATE.push_probe(dataclasses.replace(probe, env={**probe.env, **env}))


def _run_recorded(rank: int, fn: Callable[..., Any], args: tuple[Any, ...], folder: Path) -> bool:
    """Run ``fn(*args)`` and record its result or its error; whether it succeeded."""
    try:
        result = fn(*args)
    except BaseException as exc:
        _record(folder, rank, {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()})
        return False
    _record(folder, rank, {"result": result})
    return True


def _worker(rank: int, env: dict[str, str], threads: int | None, fn: Callable[..., Any], args: tuple[Any, ...],
            folder: Path) -> None:
    """One forked worker: its launcher variables, its CPU threads, ``fn``, its outcome."""
    os.environ.update(env)
    _forget_parent_detection(env)
    if threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(threads))
        torch = sys.modules.get("torch")
        if torch is not None:  # already loaded in the parent: the variable alone comes too late
            torch.set_num_threads(threads)
    ok = _run_recorded(rank, fn, args, folder)
    dist = sys.modules.get("torch.distributed")
    if ok and dist is not None and dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    if not ok:
        raise SystemExit(1)


def _xla_worker(index: int, fn: Callable[..., Any], args: tuple[Any, ...], folder: Path) -> None:
    """One torch_xla process (``index`` is its global ordinal): ``fn``, its outcome; an error
    is re-raised so that torch_xla's launcher sees it too."""
    _forget_parent_detection({})
    if not _run_recorded(index, fn, args, folder):
        raise SystemExit(1)


def _run_xla(fn: Callable[..., T], args: tuple[Any, ...], count: int) -> list[T]:
    os.environ.setdefault("PJRT_DEVICE", "TPU")
    import torch_xla

    folder = Path(tempfile.mkdtemp(prefix="portarun-notebook-launch-"))
    try:
        try:
            torch_xla.launch(_xla_worker, args=(fn, args, folder), start_method="fork",
                             debug_single_process=count == 1)
        except BaseException:
            _raise_recorded_error(folder)
            raise
        _raise_recorded_error(folder)
        ranks = sorted(int(p.name[4:-7]) for p in folder.glob("rank*.pickle"))
        return [outcome["result"] for outcome in (_outcome(folder, r) for r in ranks) if outcome is not None]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _raise_recorded_error(folder: Path) -> None:
    ranks = sorted(int(p.name[4:-7]) for p in folder.glob("rank*.pickle"))
    for rank in ranks:
        outcome = _outcome(folder, rank)
        if outcome is not None and "error" in outcome:
            raise WorkerError(rank, max(len(ranks), rank + 1), outcome["error"], outcome["traceback"])
