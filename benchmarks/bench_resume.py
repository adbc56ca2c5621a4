"""Exact resume, measured: a run killed with SIGKILL at many steps and resumed each time ends
with the same weights, bit for bit, as the run that was never interrupted, and its loss log has
every step exactly once. Also: the stall the loader's state adds to ``save()``.

The training (``train``) is a small model with dropout over a map-style dataset whose samples
get random noise from torch, Python's ``random`` and numpy inside 2 DataLoader workers
(``rt.dataloader``, shuffled without a generator of its own), gradient accumulation over 3
micro-batches, AdamW and a step scheduler, ``torch.use_deterministic_algorithms(True)`` on one
CPU thread. It checkpoints every 2 micro-batches (so saves land at every accumulation
position) with ``training_state(..., loader=loader, accumulated=k)``, in the background as
``rt.checkpoints`` would, and can SIGKILL itself at a given micro-batch (the save in flight is
then lost, as on a real kill). Its loss log is cut back to the resumed step on start, as a
tracker that purges replayed steps does.

    python benchmarks/bench_resume.py [--kills 20] [--steps 150] [--seed 0]

prints one JSON line: kills, where they fell, whether weights and the loss log match, and the
save stall with and without the loader's state. ``tests/test_exact_resume.py`` runs the same
training with fewer kills.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ACCUMULATE = 3
BATCH = 4
SAMPLES = 38  # 9 batches an epoch (drop_last): epochs and accumulation cycles do not line up
SAVE_EVERY = 2


class Noisy:
    """A map-style dataset drawing random augmentation in the worker that loads each sample."""

    def __init__(self, n: int = SAMPLES) -> None:
        import torch

        g = torch.Generator().manual_seed(7)
        self.x = torch.randn(n, 8, generator=g)
        self.y = torch.randn(n, 1, generator=g)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> Any:
        import numpy
        import torch

        noise = torch.rand(8) * 0.1 + random.random() * 0.01 + float(numpy.random.rand()) * 0.01
        return self.x[i] + noise, self.y[i]


def train(folder: Path, steps: int, kill_at: int | None, workers: int = 2) -> None:
    """Train (or resume) to ``steps`` micro-batches in ``folder``; SIGKILL self after micro-batch
    ``kill_at``. Writes ``folder/weights.pt`` at the end and appends ``step loss`` lines to
    ``folder/loss.log``."""
    import numpy
    import torch

    import portarun
    from portarun.checkpoint import Checkpointer, training_state

    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = 0
    order: dict[str, Any] = {"shuffle": True}
    if world > 1:  # under torchrun: each rank its own shard, its own random streams
        import torch.distributed as dist

        dist.init_process_group("gloo")
        rank = dist.get_rank()
        order = {"sampler": torch.utils.data.distributed.DistributedSampler(Noisy(), seed=0, drop_last=True)}
    rt = portarun.detect()
    rt.seed(rank)
    numpy.random.seed(rank)
    loader = rt.dataloader(Noisy(), batch_size=BATCH, drop_last=True, num_workers=workers,
                           persistent_workers=workers > 0, stateful=True, **order)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Dropout(0.2), torch.nn.Linear(16, 1))
    if world > 1:  # one model on every rank, as DistributedDataParallel makes it
        for p in model.parameters():
            dist.broadcast(p.data, 0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=5, gamma=0.7)
    ckpt = Checkpointer(folder / "ckpt", every_steps=SAVE_EVERY, keep_last=2, handle_signals=False)
    start = ckpt.resume(model, optimizer, scheduler, loader=loader)
    log = folder / (f"loss.rank{rank}.log" if rank else "loss.log")
    kept = [line for line in (log.read_text().splitlines() if log.exists() else []) if int(line.split()[0]) <= start]
    log.write_text("".join(f"{line}\n" for line in kept))  # steps after the checkpoint are replayed
    step, accumulated = int(start), start.accumulated
    with open(log, "a") as out:
        while step < steps:
            if world > 1:
                order["sampler"].set_epoch(step // len(loader))
            for x, y in loader:
                loss = torch.nn.functional.mse_loss(model(x), y)
                (loss / ACCUMULATE).backward()
                step, accumulated = step + 1, accumulated + 1
                if accumulated == ACCUMULATE:
                    if world > 1:
                        for p in model.parameters():
                            assert p.grad is not None
                            dist.all_reduce(p.grad)
                            p.grad /= world
                    optimizer.step()
                    scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                    accumulated = 0
                out.write(f"{step} {loss.item()!r}\n")
                out.flush()
                ckpt.maybe_save(lambda: training_state(model, optimizer, scheduler, loader=loader,
                                                       accumulated=accumulated), step)
                if step == kill_at and rank == 0:  # the whole job (torchrun, every rank, the workers) dies
                    os.killpg(0, signal.SIGKILL) if world > 1 else os.kill(os.getpid(), signal.SIGKILL)
                if step >= steps:
                    break
    ckpt.close()  # saves finished and the lease released: the exit below skips what atexit would do
    torch.save(model.state_dict(), folder / (f"weights.rank{rank}.pt" if rank else "weights.pt"))
    if world > 1:
        dist.barrier()  # both ranks out of their last collective before gloo is torn down (else exit -6)
        dist.destroy_process_group()
        # The work is written. Gloo's threads can abort interpreter finalization (SIGABRT, "terminate called
        # without an active exception"): a torch teardown race (pytorch/pytorch#179291). Leave without it.
        sys.stdout.flush()
        os._exit(0)


def run(folder: Path, steps: int, kill_at: int | None, workers: int = 2) -> int:
    """One training process; its exit status (-9 when it killed itself)."""
    cmd = [sys.executable, __file__, "train", str(folder), str(steps), str(kill_at or 0), str(workers)]
    return subprocess.run(cmd, env={**os.environ, "PYTHONHASHSEED": "0"}, timeout=600).returncode


def run_distributed(folder: Path, steps: int, kill_at: int | None, ranks: int = 2, workers: int = 2) -> int:
    """The same training as ``ranks`` processes under torchrun (gloo), in a session of its own
    so that rank 0's kill takes the whole job and nothing else; torchrun's exit status."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}", "--master_addr=127.0.0.1",
           f"--master_port={port}", __file__, "train", str(folder), str(steps), str(kill_at or 0), str(workers)]
    env = {**os.environ, "PYTHONHASHSEED": "0", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, env=env, timeout=600, start_new_session=True, capture_output=True).returncode


def compare(plain: Path, killed: Path) -> dict[str, Any]:
    """Whether the final weights are bit-identical and the loss logs hold the same steps once each."""
    import torch

    a, b = torch.load(plain / "weights.pt"), torch.load(killed / "weights.pt")
    same = a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [int(line.split()[0]) for line in (killed / "loss.log").read_text().splitlines()]
    return {"weights_identical": same,
            "loss_log_identical": (plain / "loss.log").read_text() == (killed / "loss.log").read_text(),
            "steps_each_once": steps == list(range(1, len(steps) + 1)),
            "max_abs_weight_diff": max(float((a[k] - b[k]).abs().max()) for k in a)}


def kill_points(steps: int, kills: int, seed: int) -> list[int]:
    """``kills`` distinct micro-batches to die at, at least one mid-accumulation and one
    mid-epoch (most are both), in increasing order."""
    rng = random.Random(seed)
    return sorted(rng.sample(range(1, steps), kills))


def save_stall(repeats: int = 30) -> dict[str, float]:
    """Median time ``save()`` blocks the loop (background thread mode) with and without the
    loader's state, for the benchmark's model and a loader mid-epoch with 2 workers."""
    import torch

    import portarun
    from portarun.checkpoint import Checkpointer, training_state

    rt = portarun.detect()
    loader = rt.dataloader(Noisy(), batch_size=BATCH, shuffle=True, num_workers=2, persistent_workers=True,
                           stateful=True)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 1))
    optimizer = torch.optim.AdamW(model.parameters())
    it = iter(loader)
    next(it)
    times: dict[str, list[float]] = {"without_loader": [], "with_loader": []}
    with tempfile.TemporaryDirectory() as tmp:
        ck = Checkpointer(tmp, keep_last=1, mode="thread", handle_signals=False)
        for i in range(repeats * 2):
            kind = "with_loader" if i % 2 else "without_loader"
            ck.wait()
            began = time.perf_counter()
            ck.save(training_state(model, optimizer, loader=loader if kind == "with_loader" else None), step=i)
            times[kind].append(time.perf_counter() - began)
        ck.close()
    med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
    return {"save_stall_ms_without_loader": med["without_loader"] * 1e3,
            "save_stall_ms_with_loader": med["with_loader"] * 1e3,
            "ratio": med["with_loader"] / med["without_loader"]}


class Cheap:
    """20,000 samples that cost nothing to load: the loader's own cost per batch shows."""

    def __len__(self) -> int:
        return 20_000

    def __getitem__(self, i: int) -> Any:
        import torch

        return torch.full((64,), float(i))


def loader_overhead(rounds: int = 2) -> dict[str, float]:
    """Microseconds per batch of 32 through 2 persistent workers: a plain DataLoader, and
    rt.dataloader's stateful one (which sends the workers' state with every batch); the best
    epoch of ``rounds`` after a warm-up epoch, plain and stateful alternating."""
    import portarun

    rt = portarun.detect()
    best: dict[str, float] = {}
    for stateful in (False, True) * rounds:
        loader = rt.dataloader(Cheap(), batch_size=32, shuffle=True, num_workers=2, persistent_workers=True,
                               stateful=stateful)
        for _ in loader:
            pass
        began = time.perf_counter()
        n = sum(1 for _ in loader)
        key = "loader_us_per_batch_stateful" if stateful else "loader_us_per_batch_plain"
        best[key] = min(best.get(key, float("inf")), (time.perf_counter() - began) / n * 1e6)
    return best


def bench(kills: int, steps: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        plain, killed = Path(tmp) / "plain", Path(tmp) / "killed"
        plain.mkdir()
        killed.mkdir()
        began = time.perf_counter()
        assert run(plain, steps, None) == 0
        points = kill_points(steps, kills, seed)
        codes = [run(killed, steps, k) for k in points]
        final = run(killed, steps, None)
        result: dict[str, Any] = {
            "steps": steps, "kills": len(points), "kill_points": points,
            "mid_accumulation": sum(1 for k in points if k % ACCUMULATE),
            "mid_epoch": sum(1 for k in points if k % (SAMPLES // BATCH)),
            "killed_by_sigkill": sum(1 for c in codes if c == -signal.SIGKILL), "final_exit": final,
            **compare(plain, killed), "seconds": round(time.perf_counter() - began, 1)}
    result.update(save_stall())
    result.update(loader_overhead())
    return result


def agree_cost(calls: int = 2000) -> None:
    """Under torchrun: microseconds per ``maybe_save`` call at which no rule fires, the
    per-step price of the ranks' agreement (rank 0 prints one JSON line)."""
    import torch.distributed as dist

    from portarun.checkpoint import Checkpointer

    dist.init_process_group("gloo")
    with tempfile.TemporaryDirectory() as tmp:
        ck = Checkpointer(tmp, every_steps=10 ** 9, handle_signals=False)
        began = time.perf_counter()
        for step in range(1, calls + 1):
            ck.maybe_save(dict, step)
        spent = (time.perf_counter() - began) / calls * 1e6
    if dist.get_rank() == 0:
        print(json.dumps({"ranks": dist.get_world_size(), "maybe_save_us_per_call": round(spent, 1)}))
    dist.barrier()
    dist.destroy_process_group()
    # The work is written. Gloo's threads can abort interpreter finalization (SIGABRT, "terminate called
    # without an active exception"): a torch teardown race (pytorch/pytorch#179291). Leave without it.
    sys.stdout.flush()
    os._exit(0)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "agree":
        agree_cost()
        return
    if len(sys.argv) > 1 and sys.argv[1] == "train":
        folder, steps, kill_at, workers = Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
        train(folder, steps, kill_at or None, workers)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(json.dumps(bench(args.kills, args.steps, args.seed)))


if __name__ == "__main__":
    main()
