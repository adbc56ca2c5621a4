"""A small training loop with resume and periodic saves, as a user would write it.

Usage: checkpoint_train.py TOTAL_STEPS [EVERY_STEPS] [STALL_AT_STEP] [GRACE_SECONDS]
Checkpoints go to rt.checkpoints (set PORTARUN_CHECKPOINTS_DIR). Prints "start N", then "step N"
after each step, then "done". STALL_AT_STEP makes that step hang (a stuck step).
"""
from __future__ import annotations

import sys
import time

import torch

import portarun
from portarun.checkpoint import Checkpointer, training_state


def main() -> None:
    total = int(sys.argv[1])
    every = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    stall = int(sys.argv[3]) if len(sys.argv) > 3 else -1
    grace = float(sys.argv[4]) if len(sys.argv) > 4 else 25.0
    rt = portarun.detect()
    ckpt = Checkpointer.from_runtime(rt, every_steps=every, grace=grace)
    torch.manual_seed(0)
    model = torch.nn.Linear(16, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    start = ckpt.resume(model, optimizer)
    print(f"start {start}", flush=True)
    for step in range(start, total):
        optimizer.zero_grad()
        model(torch.randn(8, 16)).pow(2).mean().backward()
        optimizer.step()
        time.sleep(0.02)
        if step + 1 == stall:
            time.sleep(100)
        print(f"step {step + 1}", flush=True)
        ckpt.maybe_save(lambda: training_state(model, optimizer), step + 1)
    print("done", flush=True)


if __name__ == "__main__":
    main()
