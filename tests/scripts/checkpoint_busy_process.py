"""Save checkpoints in a loop from a process as busy as a training process; print JSON.

Usage: checkpoint_busy_process.py ROOT SAVES [--mode MODE]

While the saves run, the process has: a DataLoader with two persistent worker processes (and
``pin_memory=True``, which starts a pin-memory thread where an accelerator exists), a thread
taking and releasing a lock in a loop, a thread running matmuls on two OpenMP threads
(``torch.set_num_threads(2)``), and a second checkpointer in ``thread`` mode saving in the
background: its writer holds the checkpoint module's own lock while it writes, the kind of
lock a forked child would inherit locked. Each round iterates the loader, saves with the first
checkpointer (``--mode``, default: its default) and records how the save ran. Prints one JSON
line: ``{"modes": [...], "reasons": [...], "steps": [...], "threads": N}``.
"""
from __future__ import annotations

import argparse
import json
import os
import threading

import torch

from portarun.checkpoint import Checkpointer


class Squares(torch.utils.data.Dataset[torch.Tensor]):
    def __len__(self) -> int:
        return 64

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.full((256,), float(i)) + torch.rand(256)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("saves", type=int)
    parser.add_argument("--mode", default=None)
    args = parser.parse_args()
    torch.set_num_threads(2)
    stop = threading.Event()
    lock = threading.Lock()

    def take_lock() -> None:
        while not stop.is_set():
            with lock:
                sum(range(200))

    def matmuls() -> None:
        a = torch.randn(256, 256)
        while not stop.is_set():
            a = torch.tanh(a @ a)

    helpers = [threading.Thread(target=take_lock, daemon=True), threading.Thread(target=matmuls, daemon=True)]
    for t in helpers:
        t.start()
    loader = torch.utils.data.DataLoader(Squares(), batch_size=16, num_workers=2, persistent_workers=True,
                                         pin_memory=True)
    options = {} if args.mode is None else {"mode": args.mode}
    ck = Checkpointer(os.path.join(args.root, "main"), keep_last=2, handle_signals=False, **options)
    other = Checkpointer(os.path.join(args.root, "other"), keep_last=1, mode="thread", handle_signals=False)
    big = {"w": torch.randn(4_000_000)}
    modes, reasons = [], []
    for step in range(args.saves):
        for batch in loader:
            batch.sum()
        other.save(big, step=step)  # still writing, holding the module's lock, while ck saves
        ck.save({"w": torch.full((100_000,), float(step)), "step": step}, step=step)
        assert ck.writer.last is not None
        modes.append(ck.writer.last.mode)
        reasons.append(ck.writer.last.reason)
    ck.wait()
    other.wait()
    stop.set()
    print(json.dumps({"modes": modes, "reasons": reasons, "steps": [i.step for i in ck.list()],
                      "last": int(ck.load(map_location="cpu")["step"]), "threads": len(os.listdir("/proc/self/task"))}))


if __name__ == "__main__":
    main()
