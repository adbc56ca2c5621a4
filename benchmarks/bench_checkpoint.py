"""Checkpoint speed on this machine, measured side by side in one run.

    .venv/bin/python benchmarks/bench_checkpoint.py [--size-mb 512] [--rounds 3] [--dir PATH]

For a state of ``--size-mb`` MiB of float32 tensors (32 tensors), each round measures, on the
same disk: a raw sequential write of the tensor bytes with fsync (the physical limit);
``torch.save`` + fsync (the synchronous baseline); ``Checkpointer.save(blocking=True)`` (full
publication: CRC-32, manifest, atomic rename); the training-loop stall of an asynchronous
``save()`` in the default mode (``auto``; the mode it picked is reported: in this process,
which has BLAS and OpenMP threads, ``thread``) and in forced ``fork`` and ``thread`` mode (the
call's duration; the write finishes in the background and is waited for outside the timing;
one checkpointer per mode saves every round, as in training, so ``thread`` reuses its snapshot
buffers from the second save on); ``torch.load`` vs ``Checkpointer.load`` (which verifies the
CRC-32). The three writes go in a rotating order, each after a `sync` and a
`--settle` pause, so none pays for the previous one's writeback (on this VM's shared disk the
second of two back-to-back 512 MiB writes is often 2-4x slower than the first). Reports the median
of each and the ratios against the goals.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from portarun.checkpoint import Checkpointer


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    os.close(fd)


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to wait after a sync before each timed write (default 3)")
    parser.add_argument("--verbose", action="store_true", help="print each round's times as it goes")
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: a temp folder in .)")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-ckpt-", dir=args.dir or "."))
    torch.manual_seed(0)
    n = args.size_mb * 2**20 // 4 // 32
    state = {f"layer{i}.weight": torch.randn(n) for i in range(32)}
    nbytes = sum(t.numel() * t.element_size() for t in state.values())
    results: dict[str, list[float]] = {k: [] for k in (
        "raw write+fsync", "torch.save+fsync", "Checkpointer.save(blocking)", "stall default", "stall fork",
        "stall thread", "torch.load", "Checkpointer.load")}
    # No rotation inside the timed saves: deleting 512 MiB is not part of writing it, and on a
    # filesystem mounted with `discard` (this VM's) it sends TRIMs that slow the next writes.
    blocking = Checkpointer(base / "blocking", keep_last=args.rounds, mode="blocking", handle_signals=False)
    background = {mode: Checkpointer(base / mode, keep_last=1, handle_signals=False,
                                     **({} if mode == "default" else {"mode": mode}))
                  for mode in ("default", "fork", "thread")}
    picked: list[str] = []
    try:
        for r in range(args.rounds):
            os.sync()  # settle the previous round's deletions and writeback outside the timings
            raw_path = base / "raw.bin"

            def raw() -> None:
                with open(raw_path, "wb") as out:
                    for t in state.values():
                        out.write(memoryview(t.numpy()).cast("B"))
                    out.flush()
                    os.fsync(out.fileno())

            pt = base / "plain.pt"

            def plain() -> None:
                torch.save(state, pt)
                _fsync(pt)

            writes: list[tuple[str, Callable[[], object]]] = [
                ("raw write+fsync", raw),
                ("torch.save+fsync", plain),
                ("Checkpointer.save(blocking)", lambda: blocking.save(state, step=r, blocking=True)),
            ]
            for name, write in writes[r % 3:] + writes[:r % 3]:  # each goes first in turn
                os.sync()
                time.sleep(args.settle)  # the VM's disk drains the previous write's data meanwhile
                results[name].append(_timed(write))
            raw_path.unlink()
            os.sync()
            if args.verbose:
                print(f"round {r}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in results.items() if v), flush=True)
            for mode, ck in background.items():
                results[f"stall {mode}"].append(_timed(lambda: ck.save(state, step=r)))
                for t in state.values():  # training goes on: the parameters change under the save
                    t.mul_(1.0001)
                ck.wait()
                if mode == "default" and ck.writer.last is not None:
                    picked.append(f"{ck.writer.last.mode} ({ck.writer.last.reason})")
            results["torch.load"].append(_timed(lambda: torch.load(pt, weights_only=True)))
            results["Checkpointer.load"].append(_timed(lambda: blocking.load(map_location="cpu")))
            pt.unlink()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    med = {k: statistics.median(v) for k, v in results.items()}
    best = {k: min(v) for k, v in results.items()}
    print(f"state: {nbytes / 2**20:.0f} MiB in 32 float32 tensors; {args.rounds} rounds; median seconds; "
          f"torch {torch.__version__}; {os.cpu_count()} CPUs")
    print("| measurement | median s | MiB/s | best s | MiB/s |")
    print("|---|---|---|---|---|")
    for k, v in med.items():
        rate = f"{nbytes / 2**20 / v:.0f}" if "stall" not in k else "-"
        best_rate = f"{nbytes / 2**20 / best[k]:.0f}" if "stall" not in k else "-"
        print(f"| {k} | {v:.3f} | {rate} | {best[k]:.3f} | {best_rate} |")
    sync = med["torch.save+fsync"]
    print()
    print(f"torch.save throughput vs raw:          {med['raw write+fsync'] / sync:.0%}")
    print(f"Checkpointer throughput vs raw:        {med['raw write+fsync'] / med['Checkpointer.save(blocking)']:.0%}"
          f" of the medians, {best['raw write+fsync'] / best['Checkpointer.save(blocking)']:.0%} of the best times"
          "  (goal >= 80%)")
    print(f"stall default vs torch.save:           {med['stall default'] / sync:.0%}  (goal <= 20%); "
          f"the default picked: {', '.join(sorted(set(picked)))}")
    print(f"stall fork vs torch.save:              {med['stall fork'] / sync:.0%}  (goal <= 20%)")
    print(f"stall thread vs torch.save:            {med['stall thread'] / sync:.0%}  (goal <= 20%)")
    print(f"Checkpointer.load vs torch.load:       {med['Checkpointer.load'] / med['torch.load']:.2f}x  (goal <= 1.2x)")


if __name__ == "__main__":
    main()
